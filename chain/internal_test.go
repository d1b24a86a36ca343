package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// These tests reproduce interleavings of Close, Watch and the control loop
// that the package's API cannot force, by calling the steps of the racing
// goroutines in the losing order.

func internalChain(t *testing.T, tiers []Tier, opts ...Option) *Chain {
	t.Helper()
	c, err := New(tiers, append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// within runs f and fails the test if it does not return within d: the
// steps under test must not block at all, so d only bounds a deadlock.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s did not return within %v (deadlock)", what, d)
	}
}

// TestWatchServiceClosedByClose: Watch found the service before Close and
// reaches the service after Close ended it: Watch must return ErrClosed,
// not deadlock on the service's lock (the feed's onStop takes it).
func TestWatchServiceClosedByClose(t *testing.T) {
	c := internalChain(t, []Tier{{Name: "t1", Registry: registrytest.NewMemoryNamed("m")}})
	s, err := c.service("svc") // Watch's c.service step, before Close
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	within(t, 5*time.Second, "service.watch after Close", func() {
		w, err := s.watch(context.Background())
		if !errors.Is(err, registry.ErrClosed) || w != nil {
			t.Errorf("watch of a closed service = %v, %v; want nil, ErrClosed", w, err)
		}
	})
}

// TestWatchAllClosedByClose: a watch-all that passed Watch's closed check
// before Close registers its feed after Close: the feed must end with
// ErrClosed rather than block forever, and no discovery may start.
func TestWatchAllClosedByClose(t *testing.T) {
	c := internalChain(t, []Tier{{Name: "t1", Registry: registrytest.NewMemoryNamed("m")}})
	c.Close()
	within(t, 5*time.Second, "watch-all after Close", func() {
		w, err := c.watchAll(context.Background()) // Watch's next step
		if err == nil {
			_, err = w.Next()
		}
		if !errors.Is(err, registry.ErrClosed) {
			t.Errorf("watch-all after Close: %v, want ErrClosed", err)
		}
	})
	c.allMu.Lock()
	d := c.disc
	c.allMu.Unlock()
	if d != nil {
		t.Errorf("a discovery was started after Close")
	}
}

// TestStartDoesNotOverwriteLiveView: a new service is visible in the
// chain's map before service() seeds it from the snapshot; if the control
// loop reconciles it first and its tier's state arrives, seeding must not
// put the older snapshot state back over the live one.
func TestStartDoesNotOverwriteLiveView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := &fixedStore{entries: []registry.SnapshotEntry{{Update: &registry.Update{
			Service:   "svc",
			Instances: []*registry.Instance{{ID: "old", Name: "svc", Endpoints: []string{"grpc://127.0.0.1:1"}}},
			Source:    "t1",
			Time:      time.Now().Add(-time.Hour),
		}}}}
		m := registrytest.NewMemoryNamed("m")
		if err := m.Register(ctx, &registry.Instance{ID: "new", Name: "svc", Endpoints: []string{"grpc://127.0.0.1:2"}}); err != nil {
			t.Fatal(err)
		}
		c := internalChain(t, []Tier{{Name: "t1", Registry: m}}, WithSnapshot(store))
		defer c.Close()

		// service()'s first half: the service enters the map.
		s := newService(c, "svc", time.Now())
		c.mu.Lock()
		c.services["svc"] = s
		c.mu.Unlock()
		// The control loop runs meanwhile and the tier answers.
		c.reconcileAll()
		synctest.Wait()
		if v := s.cur.Load(); v == nil || v.u.Source != "t1" {
			t.Fatalf("view after the tier's state = %+v, want t1's", v)
		}
		w, err := c.Watch(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		var seen []string
		go func() {
			for {
				u, err := w.Next()
				if err != nil {
					return
				}
				seen = append(seen, u.Source)
			}
		}()
		synctest.Wait()
		switches := c.m.failovers.Load() + c.m.failbacks.Load()
		// service()'s second half.
		s.mu.Lock()
		s.startLocked(time.Now())
		s.mu.Unlock()
		synctest.Wait()
		if fmt.Sprint(seen) != "[t1]" {
			t.Errorf("watcher saw sources %v, want [t1]: seeding replaced the live view", seen)
		}
		if n := c.m.failovers.Load() + c.m.failbacks.Load() - switches; n != 0 {
			t.Errorf("%d source switches by startLocked, want none", n)
		}
	})
}

// fixedStore is a read-only registry.SnapshotStore.
type fixedStore struct{ entries []registry.SnapshotEntry }

func (s *fixedStore) SaveSnapshot(context.Context, []*registry.Update) error { return nil }

func (s *fixedStore) LoadSnapshot(context.Context) ([]registry.SnapshotEntry, error) {
	out := make([]registry.SnapshotEntry, len(s.entries))
	for i, e := range s.entries {
		out[i] = registry.SnapshotEntry{Update: e.Update.Clone(), Saved: e.Saved}
	}
	return out, nil
}
