package chain_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/internal/testsupport/testutil"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
)

// TestIdleServicesForgotten: a service nobody reads or watches leaves
// memory after the idle timeout; reading it again works.
func TestIdleServicesForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		mems[0].Register(ctx, inst("svc", "a1", 9001))
		c := newChain(t, tiers, chain.WithIdleTimeout(time.Minute))
		mustGet(t, c, "svc", "a1")
		time.Sleep(30 * time.Second)
		mustGet(t, c, "svc", "a1") // used: stays
		time.Sleep(45 * time.Second)
		synctest.Wait()
		if n := len(c.Status().Services); n != 1 {
			t.Fatalf("%d services after 45s idle, want 1", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(c.Status().Services); n != 0 {
			t.Fatalf("%d services after the idle timeout, want 0", n)
		}
		mustGet(t, c, "svc", "a1")
		// A watched service is never idle.
		startPump(t, c, "svc")
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := len(c.Status().Services); n != 1 {
			t.Errorf("%d services with a watcher, want 1", n)
		}
	})
}

// TestMaxServices: the cap evicts the least recently read service nobody
// watches; when every service is watched, a new one is refused.
func TestMaxServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		for i := range 5 {
			mems[0].Register(ctx, inst(fmt.Sprintf("s%d", i), "a", 9001))
		}
		c := newChain(t, tiers, chain.WithMaxServices(3))
		for i := range 5 {
			mustGet(t, c, fmt.Sprintf("s%d", i), "a")
			time.Sleep(time.Second)
		}
		if n := len(c.Status().Services); n != 3 {
			t.Errorf("%d services kept, want the cap, 3", n)
		}
		var pumps []*pump
		for i := 2; i < 5; i++ {
			pumps = append(pumps, startPump(t, c, fmt.Sprintf("s%d", i)))
		}
		defer func() {
			for _, p := range pumps {
				p.w.Stop()
			}
		}()
		synctest.Wait()
		if _, err := c.GetService(ctx, "s0"); !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("GetService over a cap of watched services = %v, want ErrUnavailable", err)
		}
	})
}

// TestUnknownNamesForgotten: reads of names that exist nowhere do not
// leave services watched: they are answered from the negative cache for
// a moment, then forgotten (issue 11, item 5).
func TestUnknownNamesForgotten(t *testing.T) {
	e := etcdTier(t, shared.Server(t), namespace())
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: e}}, realOpts(chain.WithNegativeTTL(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	mustGet(t, c, "warmup") // tier watch machinery started
	testutil.WaitFor(t, 10*time.Second, "warmup forgotten", func() string {
		if n := len(c.Status().Services); n != 0 {
			return fmt.Sprintf("%d services", n)
		}
		return ""
	})
	before := runtime.NumGoroutine()
	for i := range 1000 {
		if _, err := c.GetService(ctx, fmt.Sprintf("nosuch-%d", i)); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("GetService(nosuch-%d) = %v, want ErrNotFound", i, err)
		}
	}
	peakSvcs, peakG := len(c.Status().Services), runtime.NumGoroutine()
	testutil.WaitFor(t, 20*time.Second, "the absent names forgotten", func() string {
		if n := len(c.Status().Services); n != 0 {
			return fmt.Sprintf("%d services still kept", n)
		}
		return ""
	})
	testutil.WaitFor(t, 20*time.Second, "goroutines back", func() string {
		if g := runtime.NumGoroutine(); g > before+5 {
			return fmt.Sprintf("%d goroutines, %d before", g, before)
		}
		return ""
	})
	t.Logf("1,000 unknown names: %d services and %+d goroutines right after, 0 services and %+d goroutines after the negative TTL (1s)",
		peakSvcs, peakG-before, runtime.NumGoroutine()-before)
}
