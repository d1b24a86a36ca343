package chain_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// metric returns the value of the chain's metric name whose labels include
// want (the chain label is implied), or fails.
func metric(t *testing.T, c *chain.Chain, name string, want map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c.Collector()); err != nil {
		t.Fatalf("register collector: %v", err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, want)
	return 0
}

var fastHealth = []chain.Option{
	chain.WithProbeInterval(time.Second),
	chain.WithFailbackAfter(10 * time.Second),
}

// TestFailoverFailbackReplay: tier 1 dies, reads never fail and watchers
// move to tier 2 without a gap; a registration made meanwhile lands in tier
// 2 and is replayed into tier 1 when it recovers; failback waits for the
// hysteresis.
func TestFailoverFailbackReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, fastHealth...)
		a1, a2 := inst("svc", "a1", 9001), inst("svc", "a2", 9002)
		if err := c.Register(ctx, a1); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
		synctest.Wait()
		p.expect(t, "tier1", "a1")
		mustGet(t, c, "svc", "a1")

		start := time.Now()
		mems[0].SetAvailable(false)
		synctest.Wait()
		// Zero failed reads during the failover.
		for range 20 {
			mustGet(t, c, "svc", "a1")
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		if tierStatus(c, "tier1").Up {
			t.Fatalf("tier1 still up 2s after it died")
		}
		ups := p.expect(t, "tier2", "a1")
		for _, u := range ups {
			if len(u.Instances) != 1 {
				t.Errorf("watcher saw a gap during failover: %s", describeUpdates(ups))
			}
		}
		t.Logf("failover after %v", time.Since(start))

		// A registration while tier 1 is down lands in tier 2 and is pending for tier 1.
		if err := c.Register(ctx, a2); err != nil {
			t.Fatalf("Register with tier1 down: %v", err)
		}
		synctest.Wait()
		p.expect(t, "tier2", "a1", "a2")
		mustGet(t, mems[1], "svc", "a1", "a2")
		if n := tierStatus(c, "tier1").Pending; n != 1 {
			t.Errorf("tier1 pending = %d, want 1", n)
		}
		if regs := c.Registrations(); len(regs) != 2 || regs[1].Live {
			t.Errorf("Registrations = %+v; want a2 not live", regs)
		}

		// Recovery: replay at once, failback only after the hysteresis.
		mems[0].SetAvailable(true)
		revived := time.Now()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if !tierStatus(c, "tier1").Up {
			t.Fatalf("tier1 not up 1.5s after recovery")
		}
		mustGet(t, mems[0], "svc", "a1", "a2")
		if got := p.drain(); len(got) != 0 {
			t.Fatalf("failback before the hysteresis: %s", describeUpdates(got))
		}
		if regs := c.Registrations(); !regs[1].Live {
			t.Errorf("a2 not live after replay: %+v", regs[1])
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a1", "a2")
		if d := time.Since(revived); d > 12*time.Second {
			t.Errorf("failback took %v", d)
		}
		if v := metric(t, c, "regchain_chain_failovers_total", nil); v != 1 {
			t.Errorf("failovers = %v, want 1", v)
		}
		if v := metric(t, c, "regchain_chain_failbacks_total", nil); v != 1 {
			t.Errorf("failbacks = %v, want 1", v)
		}
		if v := metric(t, c, "regchain_chain_replays_total", map[string]string{"tier": "tier1"}); v < 1 {
			t.Errorf("tier1 replays = %v, want >= 1", v)
		}
	})
}

// TestFlappingTier: a tier that goes up and down every second is failed
// over from once and failed back to only once it stays up.
func TestFlappingTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, chain.WithProbeInterval(300*time.Millisecond), chain.WithFailbackAfter(5*time.Second))
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
		synctest.Wait()
		p.expect(t, "tier1", "a1")
		for i := range 60 {
			mems[0].SetAvailable(i%2 == 1)
			time.Sleep(time.Second)
			mustGet(t, c, "svc", "a1")
		}
		mems[0].SetAvailable(true)
		time.Sleep(7 * time.Second)
		synctest.Wait()
		ups := p.drain()
		if len(ups) == 0 || ups[len(ups)-1].Source != "tier1" {
			t.Fatalf("not back on tier1 after the flapping stopped: %s", describeUpdates(ups))
		}
		if len(ups) > 2 {
			t.Errorf("%d source switches under a flapping tier, want <= 2: %s", len(ups), describeUpdates(ups))
		}
		if v := metric(t, c, "regchain_chain_tier_downs_total", map[string]string{"tier": "tier1"}); v < 5 {
			t.Errorf("tier1 circuit opened %v times, want it to follow the flapping", v)
		}
	})
}

// TestAllDownRegisterPending: Register returns within its ctx while every
// tier is down and the registration is replayed when they come back.
func TestAllDownRegisterPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mems, c := memChain(t, 2, fastHealth...)
		for _, m := range mems {
			m.SetAvailable(false)
		}
		time.Sleep(3 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatalf("Register with every tier down: %v", err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("Register took %v, more than its ctx", d)
		}
		if st := c.Status(); st.PendingRegistrations != 1 || st.Ready {
			t.Errorf("Status = pending %d ready %v; want 1, false", st.PendingRegistrations, st.Ready)
		}
		for _, m := range mems {
			m.SetAvailable(true)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mustGet(t, mems[0], "svc", "a1")
		mustGet(t, mems[1], "svc", "a1")
		if st := c.Status(); st.PendingRegistrations != 0 || !st.Ready {
			t.Errorf("Status after recovery = pending %d ready %v; want 0, true", st.PendingRegistrations, st.Ready)
		}
	})
}

// TestStrictRegister: with WithStrictRegister, Register fails when no tier
// accepts and leaves nothing pending.
func TestStrictRegister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mems, c := memChain(t, 1, chain.WithStrictRegister(true))
		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		err := c.Register(context.Background(), inst("svc", "a1", 9001))
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("strict Register with every tier down = %v, want ErrUnavailable", err)
		}
		if regs := c.Registrations(); len(regs) != 0 {
			t.Errorf("Registrations after a failed strict Register = %+v, want none", regs)
		}
		mems[0].SetAvailable(true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mustGet(t, mems[0], "svc")
		if err := c.Register(context.Background(), inst("svc", "a1", 9001)); err != nil {
			t.Fatalf("strict Register with the tier up: %v", err)
		}
	})
}

// TestDeregisterWhileDown: a tier that was down when an instance was
// deregistered gets the removal when it recovers.
func TestDeregisterWhileDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, fastHealth...)
		a1 := inst("svc", "a1", 9001)
		if err := c.Register(ctx, a1); err != nil {
			t.Fatal(err)
		}
		mems[1].SetAvailable(false)
		time.Sleep(3 * time.Second)
		if err := c.Deregister(ctx, &registry.Instance{Name: "svc", ID: "a1"}); err != nil {
			t.Fatal(err)
		}
		mustGet(t, mems[0], "svc")
		mems[1].SetAvailable(true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mustGet(t, mems[1], "svc")
		if n := c.Status().PendingRegistrations; n != 0 {
			t.Errorf("pending after recovery = %d, want 0", n)
		}
	})
}

// TestSnapshotStartup: a chain started while every tier is down answers at
// once from the snapshot, with its Source and Time, and moves to the tier
// when it comes back.
func TestSnapshotStartup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		confirmed := time.Now().Add(-time.Hour)
		store := storeWith("svc", "tier1", confirmed, inst("svc", "a1", 9001), inst("svc", "a2", 9002), inst("svc", "a3", 9003))
		mems, tiers := memTiers(1)
		mems[0].SetAvailable(false)
		c := newChain(t, tiers, chain.WithSnapshot(store))
		mustGet(t, c, "svc", "a1", "a2", "a3")
		p := startPump(t, c, "svc")
		synctest.Wait()
		ups := p.expect(t, chain.SnapshotSource, "a1", "a2", "a3")
		if got := ups[0].Time; !got.Equal(confirmed) {
			t.Errorf("snapshot Update.Time = %v, want %v", got, confirmed)
		}
		if ss := serviceStatus(c, "svc"); ss.Age < time.Hour {
			t.Errorf("Status age = %v, want >= 1h", ss.Age)
		}

		// The tier comes back with one of the three instances: the drop (from
		// the tier the snapshot's state came from: an authority) is held,
		// then confirmed over the guard window.
		mems[0].SetAvailable(true)
		if err := mems[0].Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := p.drain(); len(got) != 0 {
			t.Fatalf("drop from a recovering tier not held: %s", describeUpdates(got))
		}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a1")
	})
}

// TestSnapshotMaxAge: a snapshot older than the max age is not served.
func TestSnapshotMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := storeWith("svc", "tier1", time.Now().Add(-2*time.Hour), inst("svc", "a1", 9001))
		mems, tiers := memTiers(1)
		mems[0].SetAvailable(false)
		c := newChain(t, tiers, chain.WithSnapshot(store), chain.WithSnapshotMaxAge(time.Hour))
		time.Sleep(3 * time.Second) // the tier is found down
		_, err := c.GetService(ctx, "svc")
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("GetService with a too old snapshot = %v, want ErrUnavailable", err)
		}
	})
}

// TestAllDownSnapshot: when every tier dies the view moves to the snapshot,
// stamped with when the tier was last seen healthy, and back afterwards.
func TestAllDownSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		mems, c := memChain(t, 2, append(fastHealth, chain.WithSnapshot(store))...)
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a1")
		if e, ok := store.get("svc"); !ok || len(e.Update.Instances) != 1 {
			t.Fatalf("snapshot store after 5s: %+v, %v; want svc with a1", e, ok)
		}
		died := time.Now()
		for _, m := range mems {
			m.SetAvailable(false)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		ups := p.expect(t, chain.SnapshotSource, "a1")
		if last := ups[len(ups)-1]; last.Time.Before(died.Add(-time.Second)) || last.Time.After(died) {
			t.Errorf("snapshot Time = %v, want the last healthy probe before %v", last.Time, died)
		}
		mustGet(t, c, "svc", "a1")
		names, err := c.ListServices(ctx)
		if err != nil || len(names) != 1 {
			t.Errorf("ListServices with every tier down = %v, %v; want [svc]", names, err)
		}
		for _, m := range mems {
			m.SetAvailable(true)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a1")
	})
}

// TestSnapshotDebounce: under churn the store sees at most 10 commits per
// second, and the last state is saved.
func TestSnapshotDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		_, c := memChain(t, 1, chain.WithSnapshot(store))
		startPump(t, c, "svc") // keeps the service watched
		start := time.Now()
		const churn = 5 * time.Second
		for i := 0; time.Since(start) < churn; i++ {
			if err := c.Register(ctx, inst("svc", "a1", 9000+i%100)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // 200 changes per second
		}
		time.Sleep(time.Second)
		synctest.Wait()
		commits := store.commitCount()
		if max := int(churn/(100*time.Millisecond)) + 2; commits > max {
			t.Errorf("%d snapshot commits in %v of churn, want <= %d", commits, churn, max)
		}
		t.Logf("%d commits for %v of churn at 200 changes/s", commits, churn)
		got, _ := c.GetService(ctx, "svc")
		e, _ := store.get("svc")
		if !registry.EqualInstances(e.Update.Instances, got) {
			t.Errorf("stored %v, want the last state %v", e.Update.Instances, got)
		}
	})
}

// TestFreeze: a frozen chain serves the snapshot only; unfreezing returns
// to the tiers.
func TestFreeze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 1)
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
		synctest.Wait()
		p.expect(t, "tier1", "a1")
		c.Freeze(true)
		synctest.Wait()
		p.expect(t, chain.SnapshotSource, "a1")
		mems[0].Register(ctx, inst("svc", "a2", 9002))
		synctest.Wait()
		mustGet(t, c, "svc", "a1")
		mustGet(t, c, "never-seen")
		if !c.Status().Frozen || metric(t, c, "regchain_chain_frozen", nil) != 1 {
			t.Errorf("Status/metric do not show the freeze")
		}
		c.Freeze(false)
		synctest.Wait()
		p.expect(t, "tier1", "a1", "a2")
	})
}

// TestMerge: the merge policy serves the union of the tiers, sourced
// "tier1+tier2"; a tier that dies keeps its last state in the union (stale)
// while the others' changes go on reaching readers.
func TestMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, append(fastHealth, chain.WithReadPolicy(chain.Merge))...)
		mems[0].Register(ctx, inst("svc", "old1", 9001))
		mems[0].Register(ctx, inst("svc", "both", 9003))
		mems[1].Register(ctx, inst("svc", "new1", 9002))
		mems[1].Register(ctx, inst("svc", "both", 9003))
		p := startPump(t, c, "svc")
		synctest.Wait()
		p.expect(t, "tier1+tier2", "both", "new1", "old1")
		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if a, err := c.GetServiceWithInfo(ctx, "svc"); err != nil || fmt.Sprint(ids(a.Instances)) != "[both new1 old1]" || !a.Stale {
			t.Fatalf("tier1 down: GetServiceWithInfo = %v stale %v, %v; want [both new1 old1], stale", ids(a.Instances), a.Stale, err)
		}
		mems[1].Register(ctx, inst("svc", "new2", 9004))
		synctest.Wait()
		p.expect(t, "tier1+tier2", "both", "new1", "new2", "old1")
		mems[0].SetAvailable(true)
		time.Sleep(12 * time.Second)
		synctest.Wait()
		if a, err := c.GetServiceWithInfo(ctx, "svc"); err != nil || fmt.Sprint(ids(a.Instances)) != "[both new1 new2 old1]" || a.Stale || a.Source != "tier1+tier2" {
			t.Fatalf("tier1 back: GetServiceWithInfo = %v from %s stale %v, %v; want [both new1 new2 old1] from tier1+tier2, not stale", ids(a.Instances), a.Source, a.Stale, err)
		}
		names, err := c.ListServices(ctx)
		if err != nil || len(names) != 1 || names[0] != "svc" {
			t.Errorf("ListServices = %v, %v", names, err)
		}
	})
}

// noPing hides Memory's Ping, so the chain probes with its shim.
type noPing struct{ registry.Registry }

// TestProbeShim: a tier without Pinger is probed with a GetService and its
// recovery is still seen.
func TestProbeShim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := registrytest.NewMemoryNamed("m")
		c := newChain(t, []chain.Tier{{Name: "only", Registry: noPing{m}}}, fastHealth...)
		m.SetAvailable(false)
		time.Sleep(3 * time.Second)
		if tierStatus(c, "only").Up {
			t.Fatalf("tier still up with failing probes")
		}
		m.SetAvailable(true)
		time.Sleep(2 * time.Second)
		if !tierStatus(c, "only").Up {
			t.Fatalf("tier not up after probes succeed again")
		}
	})
}

// TestCloseLeavesTiers: Close does not close tiers it does not own, and
// owns them with WithOwnTiers.
func TestCloseLeavesTiers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		c := newChain(t, tiers)
		c.Close()
		if err := mems[0].Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Errorf("tier closed by a chain that does not own it: %v", err)
		}
		c2 := newChain(t, tiers, chain.WithOwnTiers(true))
		c2.Close()
		if err := mems[0].Register(ctx, inst("svc", "a1", 9001)); !errors.Is(err, registry.ErrClosed) {
			t.Errorf("owned tier after Close: %v, want ErrClosed", err)
		}
	})
}

func TestNewInvalid(t *testing.T) {
	m := registrytest.NewMemory()
	cases := map[string][]chain.Tier{
		"no tiers":      nil,
		"no name":       {{Registry: m}},
		"reserved name": {{Name: "snapshot", Registry: m}},
		"plus in name":  {{Name: "a+b", Registry: m}},
		"duplicate":     {{Name: "a", Registry: m}, {Name: "a", Registry: m}},
		"nil registry":  {{Name: "a"}},
	}
	for name, tiers := range cases {
		if c, err := chain.New(tiers); !errors.Is(err, registry.ErrInvalid) {
			if c != nil {
				c.Close()
			}
			t.Errorf("New(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

// TestReadOnlyTier: a read-only tier is read but never written.
func TestReadOnlyTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(2)
		tiers[1].ReadOnly = true
		c := newChain(t, tiers)
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		mustGet(t, mems[0], "svc", "a1")
		mustGet(t, mems[1], "svc")
		c2 := newChain(t, []chain.Tier{{Name: "ro", Registry: mems[1], ReadOnly: true}})
		if err := c2.Register(ctx, inst("svc", "a1", 9001)); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Register on an all-read-only chain = %v, want ErrInvalid", err)
		}
	})
}

// TestOpenCircuitSkipped: while a tier's circuit is open, reads of new
// services do not call it and answer from the next tier at once.
func TestOpenCircuitSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ft := &flaky{Memory: registrytest.NewMemoryNamed("f")}
		m2 := registrytest.NewMemoryNamed("m2")
		m2.Register(ctx, inst("svc", "b1", 9001))
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: ft}, {Name: "tier2", Registry: m2}}, fastHealth...)
		ft.SetAvailable(false)
		time.Sleep(3 * time.Second)
		if tierStatus(c, "tier1").Up {
			t.Fatal("tier1 circuit still closed")
		}
		_, before := ft.calls()
		start := time.Now()
		mustGet(t, c, "svc", "b1")
		if d := time.Since(start); d != 0 {
			t.Errorf("read took %v of (fake) time with tier1 down, want none", d)
		}
		if _, after := ft.calls(); after != before {
			t.Errorf("tier1 got %d GetService calls while its circuit was open", after-before)
		}
	})
}
