package chain_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry/registrytest"
)

// TestFirstReadHedges: the first read of an unwatched service, its first
// tier hanging, answers from the next tier after the hedge delay, not
// after the call timeout; and the slow read does not count against the
// tier's health (issue 11, item 6).
func TestFirstReadHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m2 := registrytest.NewMemoryNamed("m2")
		m2.Register(ctx, inst("svc", "a1", 9001))
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: hanging{registrytest.NewMemoryNamed("m1")}}, {Name: "tier2", Registry: m2}},
			chain.WithProbeInterval(time.Hour))
		synctest.Wait()
		start := time.Now()
		got, err := c.GetService(ctx, "svc")
		took := time.Since(start)
		if err != nil || len(got) != 1 {
			t.Fatalf("GetService = %v, %v", ids(got), err)
		}
		if took != 100*time.Millisecond {
			t.Errorf("first read took %v, want the hedge delay, 100ms", took)
		}
		start = time.Now()
		names, err := c.ListServices(ctx)
		if took := time.Since(start); err != nil || len(names) != 1 || took != 100*time.Millisecond {
			t.Errorf("ListServices = %v, %v after %v; want [svc] after the hedge delay", names, err, took)
		}
		time.Sleep(5 * time.Second) // the hung read times out
		synctest.Wait()
		if ts := c.Status().Tiers[0]; !ts.Up || ts.Failures != 0 {
			t.Errorf("tier1 after a slow read: up %v, failures %d; a slow read is no failure", ts.Up, ts.Failures)
		}
		t.Logf("first read with tier 1 hanging: %v (hedge delay 100ms, call timeout 2s)", took)
	})
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
