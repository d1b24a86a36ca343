package chain

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// Derive's contract holds across a republish of the same state (a tier's
// watch confirming what a first read loaded, in new Instances): callers
// that straddle it, one holding the view from before and one the view from
// after, get one value, made once. The tests force that interleaving by
// taking each caller's lookup on either side of the republish; under load
// the etcd watch's confirmation produced it by chance.
func TestDeriveStraddlesRepublish(t *testing.T) {
	republish := map[string]func(s *service, u *registry.Update){
		// setViewLocked: a state stored as new (a source switch, a reload).
		"setView": func(s *service, u *registry.Update) {
			s.setStateLocked(u, s.cur.Load().mask, time.Time{}, time.Now())
		},
		// applyLocked's same-state branch: the watcher's first state after
		// the load's, quietly served in its place.
		"sameState": func(s *service, u *registry.Update) {
			in := s.inputLocked(time.Now())
			s.applyLocked(&in, decision{u: u, mask: s.cur.Load().mask}, time.Now())
		},
	}
	for name, fn := range republish {
		t.Run(name, func(t *testing.T) { synctest.Test(t, func(t *testing.T) { testDeriveStraddles(t, fn) }) })
	}
}

func testDeriveStraddles(t *testing.T, republish func(*service, *registry.Update)) {
	ctx := context.Background()
	mem := registrytest.NewMemoryNamed("m")
	for _, id := range []string{"a", "b"} {
		if err := mem.Register(ctx, &registry.Instance{ID: id, Name: "svc", Endpoints: []string{"grpc://10.0.0.1:9000"}}); err != nil {
			t.Fatal(err)
		}
	}
	c := internalChain(t, []Tier{{Name: "t1", Registry: mem}})
	t.Cleanup(func() { c.Close(); mem.Close() })
	if _, err := c.GetService(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	s := c.services["svc"]

	type key struct{ n int }
	var runs atomic.Int64
	release := make(chan struct{})
	derive := func(ins []*registry.Instance) any {
		runs.Add(1)
		<-release
		return len(ins)
	}
	// Each caller looks the view up; between the lookups the state is
	// republished in new Instances, equal to the old ones.
	before, err := c.lookup(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	republish(s, shallowClone(before.u))
	s.mu.Unlock()
	after, err := c.lookup(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if after == before || after.u.Instances[0] == before.u.Instances[0] {
		t.Fatal("the state was not republished in new Instances")
	}

	// Key 1: the caller holding the old view adds its entry after the
	// republish (the window carryMemo used to leave open), the other
	// caller comes while derive runs. Key 2: the other way round.
	for n, views := range [][2]*state{{before, after}, {after, before}} {
		runs.Store(0)
		release = make(chan struct{})
		got := make([]any, 2)
		var wg sync.WaitGroup
		for i, v := range views {
			wg.Go(func() {
				val, err := v.derive("svc", key{n}, derive)
				if err != nil {
					t.Error(err)
				}
				got[i] = val
			})
			if i == 0 {
				synctest.Wait() // the first caller is in derive before the second asks
			}
		}
		close(release)
		wg.Wait()
		if r := runs.Load(); r != 1 {
			t.Errorf("key %d: two views of one state ran derive %d times, want once", n, r)
		}
		if got[0] != 2 || got[1] != 2 {
			t.Errorf("key %d: the callers got %v and %v, want 2 and 2", n, got[0], got[1])
		}
	}
	// A later caller finds both values without running derive.
	runs.Store(0)
	for n := range 2 {
		if v, err := c.Derive(ctx, "svc", key{n}, derive); err != nil || v != 2 {
			t.Errorf("Derive(key %d) = %v, %v, want 2", n, v, err)
		}
	}
	if r := runs.Load(); r != 0 {
		t.Errorf("a later Derive ran derive %d times, want none", r)
	}
}

// shallowClone returns u with its Instances deep-copied: the same state in
// new Instances, as a tier's watch delivers it.
func shallowClone(u *registry.Update) *registry.Update {
	cp := *u
	cp.Instances = registry.CloneInstances(u.Instances)
	return &cp
}
