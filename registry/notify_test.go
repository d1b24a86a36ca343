package registry_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/regchain/regchain/registry"
)

// A Feed is a Notifier: Notify's fn runs for every state, error and end
// that becomes ready (and at once for one that is ready), and TryNext
// returns what Next would, or ok false instead of waiting.
func TestFeedNotify(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := registry.NewFeed(ctx, nil)
	var n registry.Notifier = f
	if _, ok, err := n.TryNext(); ok || err != nil {
		t.Fatalf("TryNext on an empty feed = ok %v, %v; want not ok", ok, err)
	}
	f.Publish(upd("a", "1"))
	var calls atomic.Int64
	n.Notify(func() { calls.Add(1) })
	if calls.Load() != 1 {
		t.Fatalf("Notify with a state ready called fn %d times, want once at once", calls.Load())
	}
	if u, ok, err := n.TryNext(); !ok || err != nil || ids(u) != "a:1" {
		t.Fatalf("TryNext = %s, %v, %v; want a:1", ids(u), ok, err)
	}
	if _, ok, _ := n.TryNext(); ok {
		t.Fatal("TryNext after the only state = ok, want not ok")
	}
	f.Publish(upd("a", "2"))
	if calls.Load() != 2 {
		t.Fatalf("Publish: fn called %d times in all, want 2", calls.Load())
	}
	// A state equal to the delivered one cancels the pending one: fn may
	// have run, TryNext finds nothing.
	f.Publish(upd("a", "1"))
	if _, ok, _ := n.TryNext(); ok {
		t.Fatal("TryNext after a change undone = ok, want not ok")
	}
	boom := fmt.Errorf("x: %w", registry.ErrUnavailable)
	before := calls.Load()
	f.Fail(boom)
	if calls.Load() != before+1 {
		t.Fatalf("Fail: fn not called")
	}
	if _, ok, err := n.TryNext(); !ok || !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("TryNext after Fail = %v, %v; want the error", ok, err)
	}
	// A later Notify replaces fn.
	var second atomic.Int64
	n.Notify(func() { second.Add(1) })
	before = calls.Load()
	f.Stop()
	if second.Load() != 1 || calls.Load() != before {
		t.Fatalf("end: new fn called %d times, old one %d more; want 1 and 0", second.Load(), calls.Load()-before)
	}
	for range 2 {
		if _, ok, err := n.TryNext(); !ok || !errors.Is(err, registry.ErrStopped) {
			t.Fatalf("TryNext after the end = %v, %v; want ErrStopped, every time", ok, err)
		}
	}
	// Next agrees.
	if _, err := f.Next(); !errors.Is(err, registry.ErrStopped) {
		t.Fatalf("Next after the end = %v", err)
	}
}

// TryNextShared hands over the producer's Instances (no copy) in an Update
// and a slice of the caller's own; TryNext hands over copies. Both keep the
// feed's memory of the last state intact when the caller changes what it
// owns.
func TestFeedTryNextShared(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := registry.NewFeed(ctx, nil)
	var sn registry.SharedNotifier = f
	u := upd("a", "1", "2")
	ins := append([]*registry.Instance(nil), u.Instances...)
	f.Publish(u)
	got, ok, err := sn.TryNextShared()
	if !ok || err != nil || ids(got) != "a:1,2" {
		t.Fatalf("TryNextShared = %s, %v, %v; want a:1,2", ids(got), ok, err)
	}
	if got == u || &got.Instances[0] == &u.Instances[0] {
		t.Error("TryNextShared handed out the feed's Update or slice, not the caller's own")
	}
	for i := range ins {
		if got.Instances[i] != ins[i] {
			t.Errorf("instance %d is a copy, want the producer's", i)
		}
	}
	// The caller owns the Update and the slice: changing them changes
	// nothing the feed compares the next state with.
	got.Source, got.Instances = "mine", got.Instances[:1]
	f.Publish(upd("a", "1", "2"))
	if _, ok, _ := sn.TryNextShared(); ok {
		t.Error("a state equal to the delivered one was delivered again after the caller changed its copy")
	}
	f.Publish(upd("a", "3"))
	cp, ok, err := f.TryNext()
	if !ok || err != nil || ids(cp) != "a:3" {
		t.Fatalf("TryNext = %s, %v, %v; want a:3", ids(cp), ok, err)
	}
}
