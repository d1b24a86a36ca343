package chain_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// flaky wraps a Memory tier: its writes fail with ErrUnavailable while
// failWrites > 0 (its probes still succeed), and it counts calls.
type flaky struct {
	*registrytest.Memory
	mu         sync.Mutex
	failWrites int
	registers  []time.Time
	gets       int
}

func (f *flaky) Register(ctx context.Context, in *registry.Instance) error {
	f.mu.Lock()
	f.registers = append(f.registers, time.Now())
	fail := f.failWrites > 0
	if fail {
		f.failWrites--
	}
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("flaky: %w: write refused", registry.ErrUnavailable)
	}
	return f.Memory.Register(ctx, in)
}

func (f *flaky) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	f.mu.Lock()
	f.gets++
	f.mu.Unlock()
	return f.Memory.GetService(ctx, name)
}

func (f *flaky) calls() (registers []time.Time, gets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.registers...), f.gets
}

// TestReplayBackoff: a tier that refuses writes while answering probes gets
// the registration retried with growing delays, not in a hot loop, until it
// lands.
func TestReplayBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &flaky{Memory: registrytest.NewMemoryNamed("f"), failWrites: 6}
		c := newChain(t, []chain.Tier{{Name: "flaky", Registry: ft}}, chain.WithFailureThreshold(100))
		defer c.Close()
		if err := c.Register(context.Background(), inst("svc", "a1", 9001)); err != nil {
			t.Fatalf("Register: %v", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		mustGet(t, ft.Memory, "svc", "a1")
		regs, _ := ft.calls()
		if len(regs) != 7 {
			t.Fatalf("%d Register calls, want 7 (6 refused, 1 accepted)", len(regs))
		}
		for i := 2; i < len(regs); i++ {
			if gap, prev := regs[i].Sub(regs[i-1]), regs[i-1].Sub(regs[i-2]); gap < prev/2 || gap < 50*time.Millisecond {
				t.Errorf("retry %d after %v (previous gap %v): not backing off", i, gap, prev)
			}
		}
		if regs := c.Registrations(); len(regs) != 1 || !regs[0].Live {
			t.Errorf("Registrations = %+v, want a1 live", regs)
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
		defer c.Close()
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

// TestSnapshotSaveFailure: a failing store is retried and visible in
// Status, and catches up once it works again.
func TestSnapshotSaveFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		store.fail = errors.New("disk full")
		_, tiers := memTiers(1)
		c := newChain(t, tiers, chain.WithSnapshot(store))
		defer c.Close()
		if err := c.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		mustGet(t, c, "svc", "a1")
		// Long enough for any retry backoff to reach its cap.
		time.Sleep(2*time.Minute + 3*time.Second)
		st := c.Status().Snapshot
		if st.LastError == "" || st.Errors == 0 || st.Commits != 0 {
			t.Fatalf("Status.Snapshot with a failing store = %+v", st)
		}
		store.mu.Lock()
		store.fail = nil
		store.mu.Unlock()
		// Saves resume within the retry cap (2 s) of the disk freeing up,
		// with no new change to trigger them.
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		if e, ok := store.get("svc"); !ok || len(e.Update.Instances) != 1 {
			t.Fatalf("store after recovery: %+v, %v", e, ok)
		}
		if st := c.Status().Snapshot; st.LastError != "" || st.Commits == 0 {
			t.Errorf("Status.Snapshot after recovery = %+v", st)
		}
	})
}

// TestWatchAllFromSnapshot: a watch-all on a chain started during a total
// outage delivers every service of the snapshot.
func TestWatchAllFromSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		store.SaveSnapshot(ctx, []*registry.Update{
			{Service: "s1", Instances: []*registry.Instance{inst("s1", "a", 1)}, Source: "tier1", Time: time.Now()},
			{Service: "s2", Instances: []*registry.Instance{inst("s2", "b", 2)}, Source: "tier1", Time: time.Now()},
			{Service: "gone", Instances: []*registry.Instance{}, Source: "tier1", Time: time.Now()},
		})
		mems, tiers := memTiers(1)
		mems[0].SetAvailable(false)
		c := newChain(t, tiers, chain.WithSnapshot(store))
		defer c.Close()
		p := startPump(t, c, "")
		defer p.w.Stop()
		synctest.Wait()
		got := map[string]string{}
		for _, u := range p.drain() {
			got[u.Service] = fmt.Sprint(u.Source, ids(u.Instances))
		}
		want := map[string]string{"s1": "snapshot[a]", "s2": "snapshot[b]"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("watch-all from the snapshot = %v, want %v", got, want)
		}
		// A new service registered once the tier is back shows up.
		mems[0].SetAvailable(true)
		mems[0].Register(ctx, inst("s3", "c", 3))
		time.Sleep(3 * time.Second)
		synctest.Wait()
		seen := false
		for _, u := range p.drain() {
			seen = seen || (u.Service == "s3" && u.Source == "tier1" && len(u.Instances) == 1)
		}
		if !seen {
			t.Errorf("watch-all did not deliver s3 from tier1")
		}
	})
}

// TestConcurrentRegisterDeregister: the last call wins in every tier even
// when replays and calls interleave.
func TestConcurrentRegisterDeregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(2)
		c := newChain(t, tiers, fastHealth...)
		defer c.Close()
		mems[1].SetAvailable(false)
		time.Sleep(3 * time.Second)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := inst("svc", fmt.Sprintf("x%d", i%4), 9000+i%4)
				for j := range 10 {
					if (i+j)%3 == 0 {
						c.Deregister(ctx, in)
					} else {
						c.Register(ctx, in)
					}
				}
			}()
		}
		wg.Wait()
		// Settle: the final desired set, re-stated sequentially.
		for i := range 4 {
			in := inst("svc", fmt.Sprintf("x%d", i), 9000+i)
			if i%2 == 0 {
				c.Register(ctx, in)
			} else {
				c.Deregister(ctx, in)
			}
		}
		mems[1].SetAvailable(true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		mustGet(t, mems[0], "svc", "x0", "x2")
		mustGet(t, mems[1], "svc", "x0", "x2")
		if n := c.Status().PendingRegistrations; n != 0 {
			t.Errorf("%d pending after recovery", n)
		}
	})
}

// TestWatchDoneContext: Watch with a ctx that is already done returns a
// watcher that is already stopped, with both errors.
func TestWatchDoneContext(t *testing.T) {
	_, tiers := memTiers(1)
	c := newChain(t, tiers)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range []string{"svc", ""} {
		for range 100 {
			w, err := c.Watch(ctx, name)
			if err != nil {
				t.Fatalf("Watch(%q): %v", name, err)
			}
			if _, err := w.Next(); !errors.Is(err, registry.ErrStopped) || !errors.Is(err, context.Canceled) {
				t.Fatalf("Next on a watcher of a done ctx = %v", err)
			}
		}
	}
}
