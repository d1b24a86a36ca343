package chain_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
)

// TestGuardConfirmed: an authority's removal of every instance (an
// operator's delete in a steady tier) is held whatever the tier's history,
// re-read over the window, then confirmed and served.
func TestGuardConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(2)
		c := newChain(t, tiers, append(fastHealth, chain.WithGuard(chain.Guard{Window: 8 * time.Second}))...)
		defer c.Close()
		// Registered in tier 1 only, by someone else.
		mems[0].Register(ctx, inst("svc", "x1", 9001))
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		synctest.Wait()
		p.expect(t, "tier1", "x1")
		time.Sleep(time.Minute) // steady
		mems[0].Deregister(ctx, inst("svc", "x1", 9001))
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if got := p.drain(); len(got) != 0 {
			t.Fatalf("drop not held: %s", describeUpdates(got))
		}
		mustGet(t, c, "svc", "x1")
		if ss := serviceStatus(c, "svc"); !ss.Held || ss.HeldInstances != 0 || ss.HeldReads != 3 {
			t.Errorf("Status does not show the hold with 3 re-reads: %+v", ss)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1")
		mustGet(t, c, "svc")
		if v := metric(t, c, "regchain_chain_guard_held_total", nil); v != 1 {
			t.Errorf("held = %v, want 1", v)
		}
		if v := metric(t, c, "regchain_chain_guard_confirmed_total", nil); v != 1 {
			t.Errorf("confirmed = %v, want 1", v)
		}
	})
}

// TestNoAuthorityNoAnswer: failing over to a tier that never held the
// service (a mixed fleet) does not empty it: the last state keeps being
// served, from the snapshot, with its true age, for as long as the outage.
func TestNoAuthorityNoAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(2)
		c := newChain(t, tiers, fastHealth...)
		defer c.Close()
		mems[0].Register(ctx, inst("svc", "x1", 9001))
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		synctest.Wait()
		p.expect(t, "tier1", "x1")
		mems[0].SetAvailable(false)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		for _, u := range p.drain() {
			if len(u.Instances) == 0 {
				t.Fatalf("an empty state reached a watcher: %s", describeUpdates([]*registry.Update{u}))
			}
		}
		a, err := c.GetServiceWithInfo(ctx, "svc")
		if err != nil || len(a.Instances) != 1 || a.Source != chain.SnapshotSource || !a.Stale || a.Age(time.Now()) < 9*time.Minute {
			t.Fatalf("GetServiceWithInfo = %+v, %v; want x1 from the snapshot, stale, about 10m old", a, err)
		}
		if v := metric(t, c, "regchain_chain_guard_held_total", nil); v != 0 {
			t.Errorf("held = %v, want 0: an empty state from a tier that is no authority is no drop", v)
		}
		// The service appears in tier 2: that is an answer.
		mems[1].Register(ctx, inst("svc", "y1", 9002))
		synctest.Wait()
		p.expect(t, "tier2", "y1")
	})
}

// TestGuardDiscarded: a tier that just recovered shows a service empty for
// a moment (its registrations being replayed): the drop is held and never
// reaches readers.
func TestGuardDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		c := newChain(t, tiers, fastHealth...)
		defer c.Close()
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		mems[0].SetAvailable(true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		p.drain()
		// Within the guard window: gone and back.
		mems[0].Deregister(ctx, inst("svc", "a1", 9001))
		synctest.Wait()
		mustGet(t, c, "svc", "a1")
		time.Sleep(time.Second)
		mems[0].Register(ctx, inst("svc", "a1", 9001))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, u := range p.drain() {
			if len(u.Instances) == 0 {
				t.Errorf("the held drop reached a watcher: %s", describeUpdates([]*registry.Update{u}))
			}
		}
		mustGet(t, c, "svc", "a1")
		if v := metric(t, c, "regchain_chain_guard_discarded_total", nil); v != 1 {
			t.Errorf("discarded = %v, want 1", v)
		}
	})
}

// TestGuardSteadyTier: a steady tier's removal of the last instance is
// authoritative and goes through at once.
func TestGuardSteadyTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		_, tiers := memTiers(1)
		c := newChain(t, tiers)
		defer c.Close()
		a1 := inst("svc", "a1", 9001)
		if err := c.Register(ctx, a1); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		synctest.Wait()
		p.expect(t, "tier1", "a1")
		if err := c.Deregister(ctx, a1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		p.expect(t, "tier1")
		mustGet(t, c, "svc")
	})
}

// TestGuardMassRemoval: failing over to a tier that holds a quarter of the
// instances is held like a drop to zero.
func TestGuardMassRemoval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(2)
		c := newChain(t, tiers, fastHealth...)
		defer c.Close()
		for i, id := range []string{"a", "b", "c", "d"} {
			mems[0].Register(ctx, inst("svc", id, 9000+i))
		}
		mems[1].Register(ctx, inst("svc", "a", 9000))
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		synctest.Wait()
		p.expect(t, "tier1", "a", "b", "c", "d")
		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if got := p.drain(); len(got) != 0 {
			t.Fatalf("mass removal not held: %s", describeUpdates(got))
		}
		time.Sleep(60 * time.Second)
		synctest.Wait()
		p.expect(t, "tier2", "a")
	})
}
