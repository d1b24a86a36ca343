package statecache

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func state() []*registry.Instance {
	return []*registry.Instance{
		{ID: "a", Name: "s", Endpoints: []string{"grpc://10.0.0.1:1", "http://10.0.0.1:2"}, Metadata: map[string]string{"k": "v"}},
		{ID: "b", Name: "s", Endpoints: []string{"grpc://10.0.0.2:1"}},
	}
}

// A state republished with new but equal Instances reuses the value and
// becomes the entry's identity; a changed one does not reuse it.
func TestCacheContent(t *testing.T) {
	ins := state()
	var c Cache[*int]
	var made atomic.Int64
	derive := func([]*registry.Instance) *int { made.Add(1); return new(int) }
	v := c.Get("s", ins, derive)
	if got := c.Get("s", slices.Clone(ins), derive); got != v {
		t.Fatal("the same Instances in a new slice: value not reused")
	}
	again := registry.CloneInstances(ins)
	if got := c.Get("s", again, derive); got != v {
		t.Fatal("equal content: value not reused")
	}
	c.mu.RLock()
	identity := c.m["s"].from
	c.mu.RUnlock()
	if !SameState(identity, again) {
		t.Fatal("the new Instances are not the cached identity")
	}
	if made.Load() != 1 {
		t.Fatalf("derive ran %d times for one state, want once", made.Load())
	}
	reordered := registry.CloneInstances(ins)
	slices.Reverse(reordered[0].Endpoints)
	changed := registry.CloneInstances(ins)
	changed[1].Metadata = map[string]string{"k": "w"}
	for _, s := range [][]*registry.Instance{reordered, changed, ins[:1]} {
		if got := c.Get("s", s, derive); got == v {
			t.Errorf("different state %v: value reused", s)
		}
	}
	c.Drop("s")
	if c.Has("s") {
		t.Error("dropped entry still held")
	}
	if got := c.Get("s", ins, derive); got == v {
		t.Error("dropped entry still served")
	}
}

// Readers racing on one state, some holding its first Instances and some a
// republished copy (the window the chain's Derive had), get one value, made
// once: the second reader comes while the first one's derive runs.
func TestCacheRaceAcrossRepublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := state()
		republished := registry.CloneInstances(old)
		for _, order := range [][2][]*registry.Instance{{old, republished}, {republished, old}} {
			var c Cache[*int]
			var made atomic.Int64
			release := make(chan struct{})
			derive := func([]*registry.Instance) *int {
				made.Add(1)
				<-release
				return new(int)
			}
			got := make([]*int, 2)
			var wg sync.WaitGroup
			for i, ins := range order {
				wg.Go(func() { got[i] = c.Get("s", ins, derive) })
				if i == 0 {
					synctest.Wait() // the first reader is in derive
				}
			}
			close(release)
			wg.Wait()
			if made.Load() != 1 || got[0] != got[1] {
				t.Errorf("derive ran %d times, values %p and %p; want once, one value", made.Load(), got[0], got[1])
			}
		}
	})
}

// A derive that panics leaves the value unmade: the next reader makes it.
func TestCachePanic(t *testing.T) {
	var c Cache[int]
	func() {
		defer func() { recover() }()
		c.Get("s", state(), func([]*registry.Instance) int { panic("boom") })
	}()
	if got := c.Get("s", state(), func([]*registry.Instance) int { return 7 }); got != 7 {
		t.Errorf("after a panicking derive, Get = %d, want 7", got)
	}
}
