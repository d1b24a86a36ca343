package registry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/regchain/regchain/registry"
)

func TestHubFanOut(t *testing.T) {
	var h registry.Hub
	one := registry.NewFeed(context.Background(), nil)
	all := registry.NewFeed(context.Background(), nil)
	other := registry.NewFeed(context.Background(), nil)
	h.Add(one, "a")
	h.Add(all, "")
	h.Add(other, "b")
	h.Publish(upd("a", "1"))
	h.Publish(upd("b", "1"))
	if got, _ := one.Next(); ids(got) != "a:1" {
		t.Errorf("one: %s", ids(got))
	}
	if got, _ := other.Next(); ids(got) != "b:1" {
		t.Errorf("other: %s", ids(got))
	}
	a, _ := all.Next()
	b, _ := all.Next()
	if ids(a) != "a:1" || ids(b) != "b:1" {
		t.Errorf("all: %s %s", ids(a), ids(b))
	}
	h.Remove(one)
	h.EndAll(registry.ErrClosed)
	for _, f := range []*registry.Feed{all, other} {
		if _, err := f.Next(); !errors.Is(err, registry.ErrClosed) {
			t.Errorf("after EndAll: %v", err)
		}
	}
	one.Stop()
}

// pending returns what f holds for its consumer right now ("" when Next
// would block), as "svc:ids" or "error".
func pending(f *registry.Feed) string {
	u, ok, err := f.TryNext()
	switch {
	case !ok:
		return ""
	case err != nil:
		return "error"
	}
	return ids(u)
}

// TestHubWatchAllHearsServicesWithInstances: a watch-all is told of a
// service once it has instances, then of every state down to the first
// empty one; a service it never saw with instances is not announced empty.
// First states given at Add count as shown.
func TestHubWatchAllHearsServicesWithInstances(t *testing.T) {
	var h registry.Hub
	defer h.EndAll(registry.ErrClosed)
	all := registry.NewFeed(context.Background(), nil)
	h.Add(all, "", upd("first", "1"))
	if got := pending(all); got != "first:1" {
		t.Fatalf("first state given at Add: %q", got)
	}
	h.Publish(upd("never")) // empty, never shown
	if got := pending(all); got != "" {
		t.Errorf("an empty state of a service never shown reached the watch-all: %q", got)
	}
	if h.Shown("never") {
		t.Error("Shown(never) = true")
	}
	h.Publish(upd("first")) // shown at Add: its empty state is news
	if got := pending(all); got != "first:" {
		t.Errorf("the empty state of a service shown at Add: %q, want first:", got)
	}
	h.Publish(upd("s", "1"))
	if got := pending(all); got != "s:1" || !h.Shown("s") {
		t.Fatalf("a state with instances: %q (Shown %v)", got, h.Shown("s"))
	}
	h.Publish(upd("s"))
	if got := pending(all); got != "s:" {
		t.Errorf("the first empty state after instances: %q, want s:", got)
	}
	if h.Shown("s") {
		t.Error("Shown(s) after its empty state was delivered")
	}
	h.Deliver(upd("s"), registry.Delivery{Again: true})
	if got := pending(all); got != "" {
		t.Errorf("a second empty state reached the watch-all: %q", got)
	}
}

// TestHubDeliveryReachAgainBefore: To selects named watchers or
// watch-alls; Again delivers an unchanged state; Before leaves out feeds
// added after the Mark.
func TestHubDeliveryReachAgainBefore(t *testing.T) {
	var h registry.Hub
	defer h.EndAll(registry.ErrClosed)
	one := registry.NewFeed(context.Background(), nil)
	all := registry.NewFeed(context.Background(), nil)
	h.Add(one, "a")
	h.Add(all, "")
	h.Deliver(upd("a", "1"), registry.Delivery{To: registry.Named})
	if got, gotAll := pending(one), pending(all); got != "a:1" || gotAll != "" {
		t.Errorf("To Named: named %q, watch-all %q; want a:1 and nothing", got, gotAll)
	}
	h.Deliver(upd("a", "1"), registry.Delivery{To: registry.All})
	if got, gotAll := pending(one), pending(all); got != "" || gotAll != "a:1" {
		t.Errorf("To All: named %q, watch-all %q; want nothing and a:1", got, gotAll)
	}
	h.Publish(upd("a", "1"))
	if got, gotAll := pending(one), pending(all); got != "" || gotAll != "" {
		t.Errorf("an unchanged state was delivered again: %q %q", got, gotAll)
	}
	h.Deliver(upd("a", "1"), registry.Delivery{Again: true})
	if got, gotAll := pending(one), pending(all); got != "a:1" || gotAll != "a:1" {
		t.Errorf("Again: %q %q, want a:1 twice", got, gotAll)
	}

	mark := h.Mark()
	if mark == 0 {
		t.Fatal("Mark = 0")
	}
	late := registry.NewFeed(context.Background(), nil)
	h.Add(late, "a")
	h.Deliver(upd("a", "2"), registry.Delivery{Before: mark})
	if got, gotLate := pending(one), pending(late); got != "a:2" || gotLate != "" {
		t.Errorf("Before the mark: early feed %q, late feed %q; want a:2 and nothing", got, gotLate)
	}
	h.Deliver(upd("a", "2"), registry.Delivery{Before: h.Mark()})
	if got := pending(late); got != "a:2" {
		t.Errorf("a state read after the late feed came: %q, want a:2", got)
	}
}

// TestHubFailService reaches the watchers of one service, the watch-alls,
// or both, and no other feed.
func TestHubFailService(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		to                registry.Reach
		named, all, other string
	}{
		{registry.Named, "error", "", ""},
		{registry.All, "", "error", ""},
		{0, "error", "error", ""},
	} {
		var h registry.Hub
		named := registry.NewFeed(context.Background(), nil)
		all := registry.NewFeed(context.Background(), nil)
		other := registry.NewFeed(context.Background(), nil)
		h.Add(named, "a")
		h.Add(all, "")
		h.Add(other, "b")
		h.FailService("a", tc.to, boom)
		if got := [3]string{pending(named), pending(all), pending(other)}; got != [3]string{tc.named, tc.all, tc.other} {
			t.Errorf("FailService to %d: named, watch-all, other = %q, want %q", tc.to, got, [3]string{tc.named, tc.all, tc.other})
		}
		h.EndAll(registry.ErrClosed)
	}
}

// TestHubForgetsEndedFeeds: a feed that ends leaves the hub at once, and a
// feed that has ended is not added; Watching and Services count live
// feeds.
func TestHubForgetsEndedFeeds(t *testing.T) {
	var h registry.Hub
	a := registry.NewFeed(context.Background(), nil)
	b := registry.NewFeed(context.Background(), nil)
	all := registry.NewFeed(context.Background(), nil)
	h.Add(a, "a")
	h.Add(b, "b")
	h.Add(all, "")
	if n, s, w := h.Len(), h.Services(), h.Watching(""); n != 3 || len(s) != 2 || s[0] != "a" || s[1] != "b" || w != 1 {
		t.Fatalf("Len %d, Services %v, watch-alls %d; want 3, [a b], 1", n, s, w)
	}
	a.Stop()
	if n, w := h.Len(), h.Watching("a"); n != 2 || w != 0 {
		t.Errorf("after a Stop: Len %d, Watching(a) %d; want 2, 0", n, w)
	}
	if s := h.Services(); len(s) != 1 || s[0] != "b" {
		t.Errorf("after a Stop: Services %v, want [b]", s)
	}
	ended := registry.NewFeed(context.Background(), nil)
	ended.Stop()
	h.Add(ended, "c", upd("c", "1"))
	if n := h.Len(); n != 2 {
		t.Errorf("an ended feed was added: Len %d, want 2", n)
	}
	h.EndAll(registry.ErrClosed)
	if n := h.Len(); n != 0 {
		t.Errorf("after EndAll: Len %d", n)
	}
}

// TestHubStates: a named watcher's first state is its service's; a
// watch-all's those of the names given, in order.
func TestHubStates(t *testing.T) {
	state := func(svc string) *registry.Update { return upd(svc, "1") }
	if got := registry.States("a", []string{"x", "y"}, state); len(got) != 1 || ids(got[0]) != "a:1" {
		t.Errorf("States(a) = %v, want a's state alone", got)
	}
	got := registry.States("", []string{"x", "y"}, state)
	if len(got) != 2 || ids(got[0]) != "x:1" || ids(got[1]) != "y:1" {
		t.Errorf("States(\"\", x y) = %v, want x's then y's", got)
	}
}
