package registrytest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// testWatchNotify holds a watcher that is a registry.Notifier (a Feed: the
// chain reads those from one goroutine per tier) to its promise: Notify
// fires for the first state, for a change and for the end, and TryNext,
// without waiting, returns what Next would.
func testWatchNotify(t *testing.T, k *kit) {
	svc := k.service("notify")
	w, err := k.r.Watch(ctxT(t), svc)
	if err != nil {
		t.Fatalf("Watch(%q): %v", svc, err)
	}
	defer w.Stop()
	n, ok := w.(registry.Notifier)
	if !ok {
		t.Logf("%T's watcher %T is no Notifier: nothing more to check", k.r, w)
		return
	}
	ready := make(chan struct{}, 1)
	n.Notify(func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	// next waits for a notification and reads until TryNext has nothing.
	next := func(what string) (out []*registry.Update, errs []error) {
		t.Helper()
		select {
		case <-ready:
		case <-time.After(Timeout):
			t.Fatalf("%s: no notification within %v", what, Timeout)
		}
		for {
			u, ok, err := n.TryNext()
			if !ok {
				return out, errs
			}
			if err != nil {
				errs = append(errs, err)
				if errors.Is(err, registry.ErrStopped) {
					return out, errs
				}
				continue
			}
			out = append(out, u)
		}
	}
	var seen []*registry.Update
	for len(seen) == 0 {
		us, _ := next("first state")
		seen = append(seen, us...)
	}
	if u := seen[0]; u.Service != svc || len(u.Instances) != 0 {
		t.Fatalf("first state = %s %s, want %s with no instances", u.Service, describe(u.Instances), svc)
	}
	in := k.instance(svc, "n1", 9940)
	k.register(t, in)
	for {
		us, _ := next("the registration")
		if len(us) > 0 && registry.EqualInstances(us[len(us)-1].Instances, []*registry.Instance{in}) {
			break
		}
	}
	w.Stop()
	for {
		_, errs := next("the end")
		if len(errs) > 0 && errors.Is(errs[len(errs)-1], registry.ErrStopped) {
			break
		}
	}
	if _, ok, err := n.TryNext(); !ok || !errors.Is(err, registry.ErrStopped) {
		t.Errorf("TryNext after the end = %v, %v; want ErrStopped", ok, fmt.Sprint(err))
	}
}
