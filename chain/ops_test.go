package chain_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// incident sets up a chain over one Memory tier holding svc [a1 a2],
// registered by someone else, watched; then deletes both (an operator's
// mistake) and, when confirm is set, waits out the guard window so that
// the drop is confirmed and served. Any removal is a drop here
// (MaxDropShare 0.1), so that the two deletes are held alike.
func incident(t *testing.T, store registry.SnapshotStore, confirm bool) (*chain.Chain, *registrytest.Memory, *pump) {
	t.Helper()
	ctx := context.Background()
	mems, tiers := memTiers(1)
	opts := append(fastHealth, chain.WithGuard(chain.Guard{Window: 4 * time.Second, MaxDropShare: 0.1}))
	if store != nil {
		opts = append(opts, chain.WithSnapshot(store))
	}
	c := newChain(t, tiers, opts...)
	mems[0].Register(ctx, inst("svc", "a1", 9001))
	mems[0].Register(ctx, inst("svc", "a2", 9002))
	p := startPump(t, c, "svc")
	synctest.Wait()
	p.expect(t, "tier1", "a1", "a2")
	mems[0].Deregister(ctx, inst("svc", "a1", 9001))
	mems[0].Deregister(ctx, inst("svc", "a2", 9002))
	synctest.Wait()
	if !serviceStatus(c, "svc").Held {
		t.Fatalf("the drop is not held: %+v", serviceStatus(c, "svc"))
	}
	if confirm {
		time.Sleep(5 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1")
	}
	return c, mems[0], p
}

// TestReleaseHold: the operator lets a held drop through at once.
func TestReleaseHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, p := incident(t, nil, false)
		defer c.Close()
		defer p.w.Stop()
		mustGet(t, c, "svc", "a1", "a2")
		if err := c.ReleaseHold("svc"); err != nil {
			t.Fatalf("ReleaseHold: %v", err)
		}
		synctest.Wait()
		p.expect(t, "tier1")
		mustGet(t, c, "svc")
		if err := c.ReleaseHold("svc"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("ReleaseHold without a hold = %v, want ErrNotFound", err)
		}
		if v := metric(t, c, "regchain_chain_guard_released_total", nil); v != 1 {
			t.Errorf("released = %v, want 1", v)
		}
		if g := c.Status().Guard; g.Held != 1 || g.Released != 1 || g.Confirmed != 0 {
			t.Errorf("Status().Guard = %+v", g)
		}
	})
}

// TestFreezeServesLastGood: after an empty state was accepted, Freeze
// serves the last known good state, not the empty one.
func TestFreezeServesLastGood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, p := incident(t, newMemStore(), true)
		defer c.Close()
		defer p.w.Stop()
		mustGet(t, c, "svc")
		c.Freeze(true)
		mustGet(t, c, "svc", "a1", "a2")
		synctest.Wait()
		p.expect(t, chain.SnapshotSource, "a1", "a2")
		ss := serviceStatus(c, "svc")
		if ss.LastGood.Instances != 2 || ss.LastGood.Source != "tier1" {
			t.Errorf("Status LastGood = %+v, want 2 instances from tier1", ss.LastGood)
		}
		c.Freeze(false)
		mustGet(t, c, "svc")
	})
}

// TestRollback: the operator brings a service back to its last known good
// state after a confirmed drop; it stays there until the tier has the
// service back (or ReleaseHold).
func TestRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c, m, p := incident(t, newMemStore(), true)
		defer c.Close()
		defer p.w.Stop()
		if err := c.Rollback("nosuch"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Rollback of an unknown service = %v, want ErrNotFound", err)
		}
		if err := c.Rollback("svc"); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		mustGet(t, c, "svc", "a1", "a2")
		synctest.Wait()
		p.expect(t, chain.SnapshotSource, "a1", "a2")
		if ss := serviceStatus(c, "svc"); !ss.RolledBack || ss.Source != chain.SnapshotSource {
			t.Errorf("Status = %+v, want rolled back", ss)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		mustGet(t, c, "svc", "a1", "a2") // the tier still says empty: the rollback holds
		// The providers come back.
		m.Register(ctx, inst("svc", "a1", 9001))
		m.Register(ctx, inst("svc", "a3", 9003))
		synctest.Wait()
		p.expect(t, "tier1", "a1", "a3")
		if ss := serviceStatus(c, "svc"); ss.RolledBack {
			t.Errorf("still rolled back: %+v", ss)
		}

		// ReleaseHold ends a rollback too.
		m.Deregister(ctx, inst("svc", "a1", 9001))
		m.Deregister(ctx, inst("svc", "a3", 9003))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1")
		if err := c.Rollback("svc"); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, "svc", "a1", "a3")
		if err := c.ReleaseHold("svc"); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, "svc")
	})
}

// TestLastGoodSurvivesRestart: the last known good state is in the store:
// a chain started afterwards (its tier down) can still Freeze to it.
func TestLastGoodSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		c, m, p := incident(t, store, true)
		p.w.Stop()
		c.Close()
		if e, ok := store.get("svc"); !ok || len(e.Update.Instances) != 0 || e.LastGood == nil || len(e.LastGood.Instances) != 2 {
			t.Fatalf("stored %+v, want an empty state and a last good one of 2", e)
		}
		m.SetAvailable(false)
		c2 := newChain(t, []chain.Tier{{Name: "tier1", Registry: m}}, append(fastHealth, chain.WithSnapshot(store))...)
		mustGet(t, c2, "svc")
		c2.Freeze(true)
		mustGet(t, c2, "svc", "a1", "a2")
		c2.Freeze(false)
		if err := c2.Rollback("svc"); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c2, "svc", "a1", "a2")
	})
}

// TestStatusForAdmin: Status carries what an admin page shows: recent
// switches, the chain's registrations, tier health since when, a service's
// staleness and last known good state.
func TestStatusForAdmin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, fastHealth...)
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, "svc", "a1")
		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		st := c.Status()
		if len(st.Recent) != 1 || st.Recent[0].Service != "svc" || st.Recent[0].From != "tier1" || st.Recent[0].To != "tier2" || st.Recent[0].Failback {
			t.Errorf("Recent = %+v, want one failover tier1 -> tier2", st.Recent)
		}
		if len(st.Registrations) != 1 || st.Registrations[0].Live {
			t.Errorf("Registrations = %+v, want a1 not live (tier1 down)", st.Registrations)
		}
		if ts := st.Tiers[0]; ts.Up || ts.Since.IsZero() {
			t.Errorf("tier1 = %+v, want down since a time", ts)
		}
		ss := serviceStatus(c, "svc")
		if ss.Source != "tier2" || ss.Stale || ss.LastGood.Instances != 1 {
			t.Errorf("service = %+v", ss)
		}
	})
}

// TestFreezeTakesEffectAtOnce: once Freeze returns, reads come from the
// snapshot (and once unfrozen, from the tiers) without waiting for the
// chain's background reconciliation.
func TestFreezeTakesEffectAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		_, c := memChain(t, 1)
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

// TestStatusAgeOfLiveService: a service served from a tier that is up is
// confirmed by the tier's answers, so its Status age stays small even when
// its state has not changed for long; once the tier is down, the age grows
// from when the tier last answered.
func TestStatusAgeOfLiveService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 1, fastHealth...)
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
