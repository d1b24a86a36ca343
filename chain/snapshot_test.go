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
	"github.com/regchain/regchain/registry/registrytest"

	"github.com/regchain/regchain/registry"
)

// memStore is an in-test registry.SnapshotStore: a map of deep copies,
// counting commits, with a switch to make saves fail.
type memStore struct {
	mu      sync.Mutex
	entries map[string]registry.SnapshotEntry
	commits int
	fail    error
}

func newMemStore() *memStore { return &memStore{entries: make(map[string]registry.SnapshotEntry)} }

// storeWith returns a store holding one state of svc: ins, from source,
// last confirmed at confirmed.
func storeWith(svc, source string, confirmed time.Time, ins ...*registry.Instance) *memStore {
	s := newMemStore()
	s.SaveSnapshot(context.Background(), []*registry.Update{{Service: svc, Instances: ins, Source: source, Time: confirmed}})
	return s
}

func (s *memStore) SaveSnapshot(ctx context.Context, updates []*registry.Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	now := time.Now()
	for _, u := range updates {
		s.entries[u.Service] = registry.SnapshotEntry{Update: u.Clone(), Saved: now}
	}
	s.commits++
	return nil
}

// SaveSnapshotEntries implements registry.LastGoodSaver.
func (s *memStore) SaveSnapshotEntries(ctx context.Context, entries []registry.SnapshotEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	now := time.Now()
	for _, e := range entries {
		s.entries[e.Update.Service] = registry.SnapshotEntry{Update: e.Update.Clone(), LastGood: e.LastGood.Clone(), Saved: now}
	}
	s.commits++
	return nil
}

func (s *memStore) LoadSnapshot(ctx context.Context) ([]registry.SnapshotEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]registry.SnapshotEntry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, registry.SnapshotEntry{Update: e.Update.Clone(), LastGood: e.LastGood.Clone(), Saved: e.Saved})
	}
	return out, nil
}

func (s *memStore) get(name string) (registry.SnapshotEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	return e, ok
}

func (s *memStore) commitCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// TestSnapshotSaveFailure: a failing store is retried and visible in
// Status, and catches up once it works again.
func TestSnapshotSaveFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		store.fail = errors.New("disk full")
		_, c := memChain(t, 1, chain.WithSnapshot(store))
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
		p := startPump(t, c, "")
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

// TestSnapshotStartFirstTier: a chain started with a snapshot leaves it for
// the first tier, even when a lower tier answers first: watchers do not see
// the lower tier's state and then a switch to the first.
func TestSnapshotStartFirstTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := storeWith("svc", "tier1", time.Now(), inst("svc", "a1", 9001))
		m1, m2 := registrytest.NewMemoryNamed("m1"), registrytest.NewMemoryNamed("m2")
		m1.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "old", 9009)) // a lagging copy
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: lagWatch{m1, 50 * time.Millisecond}}, {Name: "tier2", Registry: m2}},
			chain.WithSnapshot(store))
		p := startPump(t, c, "svc")
		time.Sleep(time.Second)
		synctest.Wait()
		ups := p.drain()
		for _, u := range ups {
			if u.Source == "tier2" {
				t.Errorf("watcher saw tier2's state at start: %s", describeUpdates(ups))
			}
		}
		if len(ups) == 0 || ups[len(ups)-1].Source != "tier1" {
			t.Errorf("watcher did not end on tier1: %s", describeUpdates(ups))
		}
		if v := metric(t, c, "regchain_chain_failbacks_total", nil); v != 1 {
			t.Errorf("failbacks = %v, want 1 (snapshot to tier1)", v)
		}
	})
}

// TestSnapshotStartDeafFirstTier: the first tier is up but its watch never
// answers: after the call timeout the chain leaves the snapshot for the
// next tier rather than wait for it forever.
func TestSnapshotStartDeafFirstTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := storeWith("svc", "tier1", time.Now(), inst("svc", "a1", 9001))
		m2 := registrytest.NewMemoryNamed("m2")
		m2.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "a2", 9002))
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: deaf{registrytest.NewMemoryNamed("m1")}}, {Name: "tier2", Registry: m2}},
			chain.WithSnapshot(store), chain.WithFailureThreshold(1000), chain.WithCallTimeout(2*time.Second))
		p := startPump(t, c, "svc")
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		p.expect(t, "tier2", "a1", "a2")
		if !tierStatus(c, "tier1").Up {
			t.Errorf("tier1 down; the test wants it up but deaf")
		}
	})
}

// TestSnapshotStartMerge: under Merge, a chain started with a snapshot
// leaves it for the union of the tiers that are up, not for the first one
// that answers and then the union.
func TestSnapshotStartMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := storeWith("svc", "tier1+tier2", time.Now(), inst("svc", "a1", 9001), inst("svc", "b1", 9002))
		m1, m2 := registrytest.NewMemoryNamed("m1"), registrytest.NewMemoryNamed("m2")
		m1.Register(ctx, inst("svc", "a1", 9001))
		m2.Register(ctx, inst("svc", "b1", 9002))
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: lagWatch{m1, 50 * time.Millisecond}}, {Name: "tier2", Registry: m2}},
			chain.WithSnapshot(store), chain.WithReadPolicy(chain.Merge))
		p := startPump(t, c, "svc")
		time.Sleep(time.Second)
		synctest.Wait()
		ups := p.drain()
		for _, u := range ups {
			if u.Source == "tier2" {
				t.Errorf("watcher saw tier2's part alone at start: %s", describeUpdates(ups))
			}
		}
		if len(ups) == 0 || ups[len(ups)-1].Source != "tier1+tier2" {
			t.Errorf("watcher did not end on the union: %s", describeUpdates(ups))
		}
	})
}
