package chain_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// countingTier counts the tier's watches by name that are live: called,
// and their ctx not done (the chain ends a tier watch by its ctx).
type countingTier struct {
	*registrytest.Memory
	mu   sync.Mutex
	live map[string]int
}

func newCountingTier(name string) *countingTier {
	return &countingTier{Memory: registrytest.NewMemoryNamed(name), live: make(map[string]int)}
}

func (c *countingTier) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	c.mu.Lock()
	c.live[name]++
	c.mu.Unlock()
	context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.live[name]--
		c.mu.Unlock()
	})
	return c.Memory.Watch(ctx, name)
}

// named returns the live watches of single services.
func (c *countingTier) named() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for name, k := range c.live {
		if name != "" {
			n += k
		}
	}
	return n
}

// With a watch-all, the services it reports take their states in each
// tier from the tier's watch-all: one watch per tier, not one per service
// and tier (a service that another tier's watch-all reported first may
// start a watch of its own, ended once the tier's watch-all reports it). A service a tier does not hold is watched there on its own
// (its empty state must come from somewhere); a tier's failure moves every
// service to the next tier at once, its states already in.
func TestWatchAllCoversServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		t1, t2 := newCountingTier("m1"), newCountingTier("m2")
		const n = 50
		for i := range n {
			svc := fmt.Sprintf("svc%02d", i)
			t1.Register(ctx, inst(svc, "a", 9001))
			t2.Register(ctx, inst(svc, "b", 9002))
		}
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: t1}, {Name: "tier2", Registry: t2}}, fastHealth...)
		defer c.Close()
		all := startPump(t, c, "")
		defer all.w.Stop()
		synctest.Wait()
		got := map[string]string{}
		for _, u := range all.drain() {
			got[u.Service] = u.Source + fmt.Sprint(ids(u.Instances))
		}
		for i := range n {
			svc := fmt.Sprintf("svc%02d", i)
			if got[svc] != "tier1[a]" {
				t.Fatalf("watch-all: %s = %q, want tier1[a]", svc, got[svc])
			}
			mustGet(t, c, svc, "a")
		}
		if k1, k2 := t1.named(), t2.named(); k1 != 0 || k2 != 0 {
			t.Errorf("live named watches: %d in tier1, %d in tier2; want none (the watch-all covers them)", k1, k2)
		}

		// A service only the second tier holds: tier1 has no opinion on it
		// (an empty state from a watch of its own), tier2's watch-all
		// answers.
		t2.Register(ctx, inst("only2", "c", 9003))
		synctest.Wait()
		mustGet(t, c, "only2", "c")

		// Tier 1 goes down: every service fails over to tier 2.
		t1.SetAvailable(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		for i := range n {
			mustGet(t, c, fmt.Sprintf("svc%02d", i), "b")
		}
		t1.SetAvailable(true)
		time.Sleep(15 * time.Second) // probes, then the failback hysteresis
		synctest.Wait()
		for i := range n {
			mustGet(t, c, fmt.Sprintf("svc%02d", i), "a")
		}
	})
}
