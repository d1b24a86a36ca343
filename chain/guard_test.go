package chain_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/internal/testsupport/testutil"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
)

// TestGuardConfirmed: an authority's removal of every instance (an
// operator's delete in a steady tier) is held whatever the tier's history,
// re-read over the window, then confirmed and served.
func TestGuardConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, append(fastHealth, chain.WithGuard(chain.Guard{Window: 8 * time.Second}))...)
		// Registered in tier 1 only, by someone else.
		mems[0].Register(ctx, inst("svc", "x1", 9001))
		p := startPump(t, c, "svc")
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
		mems, c := memChain(t, 2, fastHealth...)
		mems[0].Register(ctx, inst("svc", "x1", 9001))
		p := startPump(t, c, "svc")
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
		mems, c := memChain(t, 1, fastHealth...)
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
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
		_, c := memChain(t, 1)
		a1 := inst("svc", "a1", 9001)
		if err := c.Register(ctx, a1); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
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
		mems, c := memChain(t, 2, fastHealth...)
		for i, id := range []string{"a", "b", "c", "d"} {
			mems[0].Register(ctx, inst("svc", id, 9000+i))
		}
		mems[1].Register(ctx, inst("svc", "a", 9000))
		p := startPump(t, c, "svc")
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

// TestFastRegistryRestartHeld: a registry that loses every registration
// of a service and gets them back from its providers within a second (a
// fast restart, a wipe) never shows readers an empty list (issue 11,
// item 7).
func TestFastRegistryRestartHeld(t *testing.T) {
	srv := shared.Server(t)
	ns := namespace()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	put := func() {
		for i := range 5 {
			kratosRegister(t, cli, ns, kratosInstance{ID: fmt.Sprintf("k%d", i), Name: "app", Version: "v1",
				Endpoints: []string{fmt.Sprintf("grpc://10.2.0.%d:9000", i)}})
		}
	}
	put()
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: etcdTier(t, srv, ns)}},
		append(realOpts(), chain.WithGuard(chain.Guard{}))...) // the default guard
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mustGet(t, c, "app", "k0", "k1", "k2", "k3", "k4")
	wl := startWatchLog(t, c, "app")
	wl.until(t, 10*time.Second, "etcd", "k0", "k1", "k2", "k3", "k4")
	rs := startCountingReader(c, "app")
	ctx := context.Background()
	if _, err := cli.Delete(ctx, ns+"/app/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	put() // the providers come back
	testutil.WaitFor(t, 10*time.Second, "the hold discarded", func() string {
		if ss := serviceStatus(c, "app"); ss.Held {
			return "still held"
		}
		return ""
	})
	rs.end()
	var empties int
	for _, u := range wl.all() {
		if len(u.Instances) == 0 {
			empties++
		}
	}
	g := c.Status().Guard
	t.Logf("registry wiped and refilled after 0.6 s: %d reads, %d empty, %d failed; %d empty watch updates; drops held %d, discarded %d",
		rs.reads.Load(), rs.empty.Load(), rs.failed.Load(), empties, g.Held, g.Discarded)
	if g.Held == 0 {
		t.Error("the drop was never held")
	}
	if rs.empty.Load() != 0 || empties != 0 {
		t.Errorf("%d empty reads and %d empty watch updates, want none", rs.empty.Load(), empties)
	}
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
		if err := t1.Register(ctx, inst("svc", "x1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, c, "svc")
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
