package chain_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// Watching many services costs O(tiers) goroutines: the tiers' watchers
// are registry.Feeds (Notifiers), read by one pump per tier.
func TestWatchManyServicesGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(2)
		for _, m := range mems {
			for s := range 1000 {
				if err := m.Register(ctx, &registry.Instance{ID: "i", Name: fmt.Sprintf("svc-%04d", s), Endpoints: []string{"grpc://10.0.0.1:9000"}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		c := newChain(t, tiers)
		t.Cleanup(func() {
			c.Close()
			for _, m := range mems {
				m.Close()
			}
		})
		synctest.Wait()
		before := runtime.NumGoroutine()
		for s := range 1000 {
			if _, err := c.GetService(ctx, fmt.Sprintf("svc-%04d", s)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		added := runtime.NumGoroutine() - before
		t.Logf("1,000 watched services over 2 tiers: +%d goroutines", added)
		if added > 20 {
			t.Errorf("1,000 watched services added %d goroutines, want O(tiers)", added)
		}
		// And they follow changes.
		if err := mems[0].Register(ctx, &registry.Instance{ID: "j", Name: "svc-0500", Endpoints: []string{"grpc://10.0.0.2:9000"}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, err := c.GetService(ctx, "svc-0500"); err != nil || len(got) != 2 {
			t.Fatalf("GetService after a change = %v, %v", ids(got), err)
		}
	})
}

// A tier whose watchers are not Notifiers is read as before, one
// goroutine per watch, and follows changes too.
func TestWatcherWithoutNotifier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := registrytest.NewMemoryNamed("plain")
		if err := m.Register(ctx, &registry.Instance{ID: "a", Name: "svc", Endpoints: []string{"grpc://10.0.0.1:9000"}}); err != nil {
			t.Fatal(err)
		}
		c := newChain(t, []chain.Tier{{Name: "plain", Registry: plainWatches{m}}})
		t.Cleanup(func() { c.Close(); m.Close() })
		if got, err := c.GetService(ctx, "svc"); err != nil || len(got) != 1 {
			t.Fatalf("GetService = %v, %v", ids(got), err)
		}
		synctest.Wait()
		if err := m.Register(ctx, &registry.Instance{ID: "b", Name: "svc", Endpoints: []string{"grpc://10.0.0.2:9000"}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, err := c.GetService(ctx, "svc"); err != nil || len(got) != 2 {
			t.Fatalf("GetService after a change = %v, %v", ids(got), err)
		}
	})
}

// plainWatches hides the Notifier of its registry's watchers.
type plainWatches struct{ registry.Registry }

func (p plainWatches) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := p.Registry.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	return plainWatcher{w}, nil
}

type plainWatcher struct{ w registry.Watcher }

func (p plainWatcher) Next() (*registry.Update, error) { return p.w.Next() }
func (p plainWatcher) Stop() error                     { return p.w.Stop() }

// A watcher that keeps failing is read again after a backoff, not
// restarted; what it delivers then reaches the chain.
func TestPumpedWatcherKeepsFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := registrytest.NewMemoryNamed("m")
		if err := m.Register(ctx, &registry.Instance{ID: "a", Name: "svc", Endpoints: []string{"grpc://10.0.0.1:9000"}}); err != nil {
			t.Fatal(err)
		}
		rec := &recordWatches{Registry: m}
		c := newChain(t, []chain.Tier{{Name: "m", Registry: rec}})
		t.Cleanup(func() { c.Close(); m.Close() })
		if _, err := c.GetService(ctx, "svc"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		feeds := rec.feeds()
		if len(feeds) != 1 {
			t.Fatalf("%d watches, want 1", len(feeds))
		}
		// Not ErrUnavailable: the tier's breaker stays closed (that would
		// restart the watches when the tier comes back).
		boom := errors.New("flaky watch")
		for range 3 {
			feeds[0].Fail(boom)
			synctest.Wait()
		}
		if err := m.Register(ctx, &registry.Instance{ID: "b", Name: "svc", Endpoints: []string{"grpc://10.0.0.2:9000"}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(10 * time.Second) // past the longest backoff (fake time)
		synctest.Wait()
		if got, err := c.GetService(ctx, "svc"); err != nil || len(got) != 2 {
			t.Fatalf("GetService after the errors = %v, %v; want a and b", ids(got), err)
		}
		if n := len(rec.feeds()); n != 1 {
			t.Errorf("%d watches after repeated errors, want the first one kept", n)
		}
	})
}

// recordWatches keeps the Feeds its registry's Watch returns.
type recordWatches struct {
	registry.Registry
	mu sync.Mutex
	fs []*registry.Feed
}

func (r *recordWatches) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := r.Registry.Watch(ctx, name)
	if f, ok := w.(*registry.Feed); ok {
		r.mu.Lock()
		r.fs = append(r.fs, f)
		r.mu.Unlock()
	}
	return w, err
}

func (r *recordWatches) feeds() []*registry.Feed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.fs)
}

// A watcher with more states ready than one turn holds is read to the end
// over several turns.
func TestPumpTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := registrytest.NewMemoryNamed("m")
		if err := m.Register(ctx, &registry.Instance{ID: "a", Name: "svc", Endpoints: []string{"grpc://10.0.0.1:9000"}}); err != nil {
			t.Fatal(err)
		}
		c := newChain(t, []chain.Tier{{Name: "m", Registry: m}})
		t.Cleanup(func() { c.Close(); m.Close() })
		w, err := c.Watch(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		synctest.Wait()
		// 300 services at once: the chain's watch-all watcher on the tier
		// has 300 states ready.
		for s := range 300 {
			if err := m.Register(ctx, &registry.Instance{ID: "x", Name: fmt.Sprintf("s%03d", s), Endpoints: []string{"grpc://10.0.0.9:9000"}}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		names, err := c.ListServices(ctx)
		if err != nil || len(names) != 301 {
			t.Fatalf("ListServices = %d names, %v; want 301", len(names), err)
		}
		if got, err := c.GetService(ctx, "s299"); err != nil || len(got) != 1 {
			t.Fatalf("GetService(s299) = %v, %v", ids(got), err)
		}
	})
}
