package chain_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

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
		defer c.Close()
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
		p := startPump(t, c, "svc")
		defer p.w.Stop()
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
		defer c.Close()
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
