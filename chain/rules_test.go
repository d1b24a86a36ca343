package chain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// Rules of chain/doc.go that the first read, Freeze and the guard keep,
// each through the chain's API.

// Under Merge a service's first read, and a first watch state, hold the
// union of every tier that is up (rule 4), not the first tier's part.
func TestMergeFirstReadIsTheUnion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, chain.WithReadPolicy(chain.Merge))
		const n = 20
		for i := range n {
			svc := fmt.Sprintf("svc%d", i)
			mems[0].Register(ctx, inst(svc, "a", 9001))
			mems[1].Register(ctx, inst(svc, "b", 9002))
		}
		for i := range n / 2 {
			mustGet(t, c, fmt.Sprintf("svc%d", i), "a", "b")
		}
		for i := n / 2; i < n; i++ {
			p := startPump(t, c, fmt.Sprintf("svc%d", i))
			synctest.Wait()
			got := p.drain()
			if len(got) == 0 || fmt.Sprint(ids(got[0].Instances)) != "[a b]" || got[0].Source != "tier1+tier2" {
				t.Fatalf("svc%d: first watch states %s; want tier1+tier2 [a b] first", i, describeUpdates(got))
			}
			p.w.Stop()
		}
	})
}

// A first read of a service the snapshot does not hold, with every tier
// known down (its circuit open), fails at once: nothing is on its way. The
// watch brings the state when the tier returns.
func TestFirstReadTierKnownDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		mems[0].Register(ctx, inst("svc", "a", 9001))
		mems[0].SetAvailable(false)
		c := newChain(t, tiers, append(fastHealth, chain.WithSnapshot(newMemStore()))...)
		time.Sleep(3 * time.Second) // the probes open the circuit
		synctest.Wait()
		if st := c.Status(); st.Tiers[0].Up {
			t.Fatal("tier still up")
		}
		for _, name := range []string{"svc", "other"} {
			start := time.Now()
			_, err := c.GetService(ctx, name)
			if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "is down") {
				t.Fatalf("GetService(%s) = %v; want ErrUnavailable saying the tier is down", name, err)
			}
			if took := time.Since(start); took != 0 {
				t.Errorf("GetService(%s) waited %v on a tier known down", name, took)
			}
		}
		p := startPump(t, c, "svc")
		synctest.Wait()
		if got := p.results(); len(got) != 1 || !errors.Is(got[0].err, registry.ErrUnavailable) {
			t.Fatalf("a new watcher got %s; want the error once", describePumped(got))
		}
		mems[0].SetAvailable(true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a")
		mustGet(t, c, "svc", "a")
	})
}

// Freeze keeps a held drop as it was: Status shows it held while frozen,
// unfreezing neither holds it again (one hold counted, its start kept) nor
// lets it through before it is confirmed.
func TestFreezeKeepsHeldDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		// One instance: its removal is one state, a drop to zero (several
		// removals one by one could be seen one state at a time, each no
		// drop, and the hold would start from whichever was served).
		mems[0].Register(ctx, inst("svc", "a", 9001))
		c := newChain(t, tiers, append(fastHealth, chain.WithGuard(chain.Guard{Window: 20 * time.Second}))...)
		mustGet(t, c, "svc", "a")
		mems[0].Deregister(ctx, &registry.Instance{Name: "svc", ID: "a"})
		synctest.Wait()
		held := func(when string) chain.ServiceStatus {
			t.Helper()
			st := c.Status()
			if len(st.Services) != 1 || !st.Services[0].Held {
				t.Fatalf("%s: Status %+v; want svc held", when, st.Services)
			}
			return st.Services[0]
		}
		since := held("before Freeze").HeldSince
		c.Freeze(true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := held("while frozen").HeldSince; !got.Equal(since) {
			t.Errorf("while frozen: held since %v, want %v", got, since)
		}
		c.Freeze(false)
		synctest.Wait()
		if got := held("after Freeze").HeldSince; !got.Equal(since) {
			t.Errorf("after Freeze: held since %v, want %v (the same hold)", got, since)
		}
		mustGet(t, c, "svc", "a")
		if g := c.Status().Guard; g.Held != 1 || g.Confirmed+g.Discarded+g.Released != 0 {
			t.Errorf("guard counters %+v; want one hold, nothing else", g)
		}
		time.Sleep(25 * time.Second) // the window passes: confirmed
		synctest.Wait()
		mustGet(t, c, "svc")
		if g := c.Status().Guard; g.Held != 1 || g.Confirmed != 1 {
			t.Errorf("guard counters %+v; want one hold, confirmed", g)
		}
	})
}

// A process started from an old snapshot (ten instances) whose live tier
// answers with its own registration alone: the drop is held, and readers
// get the ten with the live one, not the old ten only.
func TestHeldDropServesArrivals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var old []*registry.Instance
		var want []string
		for i := range 10 {
			id := fmt.Sprintf("old%d", i)
			old = append(old, inst("svc", id, 9000+i))
			want = append(want, id)
		}
		store := storeWith("svc", "tier1", time.Now().Add(-time.Hour), old...)
		m := registrytest.NewMemoryNamed("m")
		m.Register(ctx, inst("svc", "own", 9100))
		// The tier's watch answers after the reader's Watch, so that the
		// reader sees where it starts from.
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: lagWatch{m, 50 * time.Millisecond}}}, chain.WithSnapshot(store))
		p := startPump(t, c, "svc")
		time.Sleep(time.Second)
		synctest.Wait()
		p.expect(t, "tier1+snapshot", append(want, "own")...)
		if st := c.Status(); !st.Services[0].Held || st.Services[0].HeldInstances != 1 {
			t.Errorf("Status %+v; want the drop held (1 instance)", st.Services[0])
		}
	})
}
