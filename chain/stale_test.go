package chain_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// deaf is a tier that answers probes but whose reads fail and whose
// watches never deliver: up as far as the circuit breaker knows, useless
// to a service.
type deaf struct{ *registrytest.Memory }

func (d deaf) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	return nil, fmt.Errorf("deaf: %w: no answer", registry.ErrUnavailable)
}

func (d deaf) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	return registry.NewFeed(ctx, nil), nil
}

// slowRead is a tier whose GetService, once armed, reads the state and
// then waits for release before returning it: a read that crosses a
// change in the tier.
type slowRead struct {
	*registrytest.Memory
	armed   atomic.Bool
	entered chan struct{} // receives once per gated read
	release chan struct{}
}

func newSlowRead(name string) *slowRead {
	return &slowRead{Memory: registrytest.NewMemoryNamed(name), entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (s *slowRead) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	got, err := s.Memory.GetService(ctx, name)
	if s.armed.Load() {
		s.entered <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return got, err
}

// TestFirstReadIsTheWatchState: a service's first state comes from the
// tiers' watches, and only from them: a first read makes no GetService of
// its own (tier2's would block until released), answers with the watch's
// state, and later reads follow the watch.
func TestFirstReadIsTheWatchState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		t1 := deaf{registrytest.NewMemoryNamed("m1")}
		t2 := newSlowRead("m2")
		defer close(t2.release)
		if err := t2.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		t2.armed.Store(true)
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: t1}, {Name: "tier2", Registry: t2}},
			chain.WithFailureThreshold(1000), chain.WithCallTimeout(time.Minute))
		defer c.Close()
		mustGet(t, c, "svc", "a1") // tier1's watch never answers: tier2's after the hedge delay
		if err := t2.Register(ctx, inst("svc", "a2", 9002)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mustGet(t, c, "svc", "a1", "a2")
		select {
		case <-t2.entered:
			t.Error("a read of the chain called the tier's GetService")
		default:
		}
	})
}

// TestGuardReReadDoesNotOverwriteNewerWatchState: while the guard re-reads
// a held drop, the tier's watcher delivers a newer state; the view must end
// at that newer state, not at the re-read's older one.
func TestGuardReReadDoesNotOverwriteNewerWatchState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		t1 := newSlowRead("m1")
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: t1}},
			append(fastHealth, chain.WithGuard(chain.Guard{Window: 4 * time.Second}), chain.WithCallTimeout(time.Minute))...)
		defer c.Close()
		if err := t1.Register(ctx, inst("svc", "x1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		synctest.Wait()
		p.expect(t, "tier1", "x1")

		t1.armed.Store(true)
		t1.Deregister(ctx, inst("svc", "x1", 9001)) // someone else's delete: held
		synctest.Wait()
		if !serviceStatus(c, "svc").Held {
			t.Fatalf("the drop is not held: %+v", serviceStatus(c, "svc"))
		}
		<-t1.entered // the first re-read holds []
		if err := t1.Register(ctx, inst("svc", "x2", 9002)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the watcher has delivered [x2]
		close(t1.release)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		mustGet(t, c, "svc", "x2")
		p.expect(t, "tier1", "x2")
		if serviceStatus(c, "svc").Held {
			t.Errorf("still held")
		}
	})
}

// TestStrictRegisterFailureKeepsPrevious: a strict re-registration that no
// tier accepts is dropped, and the instance's previous registration stays
// what the chain keeps (it must not turn into a deregistration).
func TestStrictRegisterFailureKeepsPrevious(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		c := newChain(t, tiers, append(fastHealth, chain.WithStrictRegister(true))...)
		defer c.Close()
		v1 := inst("svc", "a1", 9001)
		if err := c.Register(ctx, v1); err != nil {
			t.Fatal(err)
		}
		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		v2 := inst("svc", "a1", 9002)
		if err := c.Register(ctx, v2); !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("strict Register with every tier down = %v, want ErrUnavailable", err)
		}
		mems[0].SetAvailable(true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		got, err := mems[0].GetService(ctx, "svc")
		if err != nil || len(got) != 1 || !got[0].Equal(v1) {
			t.Fatalf("tier after recovery = %v, %v; want the first registration %v", got, err, v1)
		}
		regs := c.Registrations()
		if len(regs) != 1 || !regs[0].Live || !regs[0].Instance.Equal(v1) {
			t.Errorf("Registrations = %+v, want %v live", regs, v1)
		}
	})
}

// TestChainAsTier: a chain used as another chain's tier is seen down when
// none of its own tiers is up, so the outer chain fails over to its next
// tier instead of serving the inner chain's frozen memory.
func TestChainAsTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m1, m2 := registrytest.NewMemoryNamed("m1"), registrytest.NewMemoryNamed("m2")
		inner := newChain(t, []chain.Tier{{Name: "m1", Registry: m1}}, fastHealth...)
		defer inner.Close()
		outer := newChain(t, []chain.Tier{{Name: "inner", Registry: inner}, {Name: "m2", Registry: m2}}, fastHealth...)
		defer outer.Close()
		if err := outer.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, outer, "svc")
		defer p.w.Stop()
		synctest.Wait()
		p.expect(t, "inner", "a1")
		m1.SetAvailable(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if tierStatus(outer, "inner").Up {
			t.Errorf("the inner chain, all of whose tiers are down, is still up for the outer chain")
		}
		if err := outer.Register(ctx, inst("svc", "a2", 9002)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		p.expect(t, "m2", "a1", "a2")
	})
}

// slowWatch is a tier whose Watch does its I/O within the call, as some
// registries do (a first read before returning the watcher), and here
// never gets an answer: it returns only when its ctx is done.
type slowWatch struct{ *registrytest.Memory }

func (s slowWatch) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("slowWatch: watch: %w", ctx.Err())
}

// TestCloseWithBlockingTierWatch: Close stops every goroutine even when a
// tier's Watch call is still in flight: the call gets a ctx that the chain
// cancels.
func TestCloseWithBlockingTierWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := registrytest.NewMemoryNamed("m")
		c := newChain(t, []chain.Tier{{Name: "slow", Registry: slowWatch{m}}})
		w, err := c.Watch(context.Background(), "svc")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		synctest.Wait()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		default:
			t.Fatal("Close blocks on a tier's Watch call in flight")
		}
	})
}

// lagWatch is a tier whose Watch takes a while to return, like a remote
// registry compared with a local one.
type lagWatch struct {
	*registrytest.Memory
	lag time.Duration
}

func (l lagWatch) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	timer := time.NewTimer(l.lag)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return l.Memory.Watch(ctx, name)
}

// TestSnapshotStartFirstTier: a chain started with a snapshot leaves it for
// the first tier, even when a lower tier answers first: watchers do not see
// the lower tier's state and then a switch to the first.
func TestSnapshotStartFirstTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		store.SaveSnapshot(ctx, []*registry.Update{{Service: "svc", Instances: []*registry.Instance{inst("svc", "a1", 9001)}, Source: "tier1", Time: time.Now()}})
		m1, m2 := registrytest.NewMemoryNamed("m1"), registrytest.NewMemoryNamed("m2")
		m1.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "old", 9009)) // a lagging copy
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: lagWatch{m1, 50 * time.Millisecond}}, {Name: "tier2", Registry: m2}},
			chain.WithSnapshot(store))
		defer c.Close()
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		time.Sleep(time.Second)
		synctest.Wait()
		ups := p.drain()
		for _, u := range ups {
			if u.Source == "tier2" {
				t.Errorf("watcher saw tier2's state at start: %s", describeUpdates(ups))
			}
		}
		if len(ups) == 0 || ups[len(ups)-1].Source != "tier1" {
			t.Errorf("watcher did not end on tier1: %s", describeUpdates(ups))
		}
		if v := metric(t, c, "regchain_chain_failbacks_total", nil); v != 1 {
			t.Errorf("failbacks = %v, want 1 (snapshot to tier1)", v)
		}
	})
}

// TestSnapshotStartDeafFirstTier: the first tier is up but its watch never
// answers: after the call timeout the chain leaves the snapshot for the
// next tier rather than wait for it forever.
func TestSnapshotStartDeafFirstTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		store.SaveSnapshot(ctx, []*registry.Update{{Service: "svc", Instances: []*registry.Instance{inst("svc", "a1", 9001)}, Source: "tier1", Time: time.Now()}})
		m2 := registrytest.NewMemoryNamed("m2")
		m2.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "a2", 9002))
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: deaf{registrytest.NewMemoryNamed("m1")}}, {Name: "tier2", Registry: m2}},
			chain.WithSnapshot(store), chain.WithFailureThreshold(1000), chain.WithCallTimeout(2*time.Second))
		defer c.Close()
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		p.expect(t, "tier2", "a1", "a2")
		if !tierStatus(c, "tier1").Up {
			t.Errorf("tier1 down; the test wants it up but deaf")
		}
	})
}

// nilInstances is a buggy tier whose reads and watch states contain a nil
// Instance next to real ones.
type nilInstances struct{ *registrytest.Memory }

func (n nilInstances) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	got, err := n.Memory.GetService(ctx, name)
	return append([]*registry.Instance{nil}, got...), err
}

func (n nilInstances) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := n.Memory.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	return nilWatcher{w}, nil
}

type nilWatcher struct{ registry.Watcher }

func (w nilWatcher) Next() (*registry.Update, error) {
	u, err := w.Watcher.Next()
	if u != nil {
		u.Instances = append(u.Instances, nil)
	}
	return u, err
}

// TestNilInstanceFromTier: a nil Instance from a tier is dropped, not a
// crash of the chain.
func TestNilInstanceFromTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := registrytest.NewMemoryNamed("m")
		m.Register(ctx, inst("svc", "b", 9002))
		m.Register(ctx, inst("svc", "a", 9001))
		c := newChain(t, []chain.Tier{{Name: "bad", Registry: nilInstances{m}}})
		defer c.Close()
		mustGet(t, c, "svc", "a", "b")
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		m.Register(ctx, inst("svc", "c", 9003))
		synctest.Wait()
		p.expect(t, "bad", "a", "b", "c")
		v, err := c.Lookup(ctx, "svc")
		if err != nil || v.Len() != 3 || v.At(0).ID != "a" {
			t.Errorf("Lookup = %d instances, %v; want a, b, c sorted", v.Len(), err)
		}
	})
}

// TestFreezeTakesEffectAtOnce: once Freeze returns, reads come from the
// snapshot (and once unfrozen, from the tiers) without waiting for the
// chain's background reconciliation.
func TestFreezeTakesEffectAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		_, tiers := memTiers(1)
		c := newChain(t, tiers)
		defer c.Close()
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, "svc", "a1")
		synctest.Wait()
		for range 20 {
			c.Freeze(true)
			if v, err := c.Lookup(ctx, "svc"); err != nil || v.Source() != chain.SnapshotSource {
				t.Fatalf("Lookup right after Freeze(true) = %q, %v; want the snapshot", v.Source(), err)
			}
			c.Freeze(false)
			if v, err := c.Lookup(ctx, "svc"); err != nil || v.Source() != "tier1" {
				t.Fatalf("Lookup right after Freeze(false) = %q, %v; want tier1", v.Source(), err)
			}
		}
	})
}

// TestSnapshotStartMerge: under Merge, a chain started with a snapshot
// leaves it for the union of the tiers that are up, not for the first one
// that answers and then the union.
func TestSnapshotStartMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		store.SaveSnapshot(ctx, []*registry.Update{{Service: "svc", Instances: []*registry.Instance{inst("svc", "a1", 9001), inst("svc", "b1", 9002)}, Source: "tier1+tier2", Time: time.Now()}})
		m1, m2 := registrytest.NewMemoryNamed("m1"), registrytest.NewMemoryNamed("m2")
		m1.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "b1", 9002))
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: lagWatch{m1, 50 * time.Millisecond}}, {Name: "tier2", Registry: m2}},
			chain.WithSnapshot(store), chain.WithReadPolicy(chain.Merge))
		defer c.Close()
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		time.Sleep(time.Second)
		synctest.Wait()
		ups := p.drain()
		for _, u := range ups {
			if u.Source == "tier2" {
				t.Errorf("watcher saw tier2's part alone at start: %s", describeUpdates(ups))
			}
		}
		if len(ups) == 0 || ups[len(ups)-1].Source != "tier1+tier2" {
			t.Errorf("watcher did not end on the union: %s", describeUpdates(ups))
		}
	})
}

// TestStatusAgeOfLiveService: a service served from a tier that is up is
// confirmed by the tier's answers, so its Status age stays small even when
// its state has not changed for long; once the tier is down, the age grows
// from when the tier last answered.
func TestStatusAgeOfLiveService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		c := newChain(t, tiers, fastHealth...)
		defer c.Close()
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, "svc", "a1")
		time.Sleep(90 * time.Second)
		if ss := serviceStatus(c, "svc"); ss.Source != "tier1" || ss.Age > 2*time.Second {
			t.Errorf("live service status = %+v; want tier1, age under the probe interval", ss)
		}
		died := time.Now()
		mems[0].SetAvailable(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if ss := serviceStatus(c, "svc"); ss.Source != chain.SnapshotSource || ss.Age < time.Minute || ss.Age > time.Minute+2*time.Second {
			t.Errorf("status a minute after the tier died = %+v; want the snapshot, age ~%v", ss, time.Since(died))
		}
	})
}
