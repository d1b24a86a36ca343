package statecache

import (
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A state republished with new but equal Instances reuses the value and
// becomes the entry's identity; a changed one does not reuse it.
func TestCacheContent(t *testing.T) {
	ins := []*registry.Instance{
		{ID: "a", Name: "s", Endpoints: []string{"grpc://10.0.0.1:1", "http://10.0.0.1:2"}, Metadata: map[string]string{"k": "v"}},
		{ID: "b", Name: "s", Endpoints: []string{"grpc://10.0.0.2:1"}},
	}
	var c Cache[*int]
	v := new(int)
	c.Put("s", ins, v)
	if got, ok := c.Get("s", slices.Clone(ins)); !ok || got != v {
		t.Fatal("the same Instances in a new slice: value not reused")
	}
	again := registry.CloneInstances(ins)
	if got, ok := c.Get("s", again); !ok || got != v {
		t.Fatal("equal content: value not reused")
	}
	c.mu.RLock()
	identity := c.m["s"].from
	c.mu.RUnlock()
	if !SameState(identity, again) {
		t.Fatal("the new Instances are not the cached identity")
	}
	reordered := registry.CloneInstances(ins)
	slices.Reverse(reordered[0].Endpoints)
	changed := registry.CloneInstances(ins)
	changed[1].Metadata = map[string]string{"k": "w"}
	for _, s := range [][]*registry.Instance{reordered, changed, ins[:1]} {
		if _, ok := c.Get("s", s); ok {
			t.Errorf("different state %v: value reused", s)
		}
	}
	c.Drop("s")
	if _, ok := c.Get("s", ins); ok {
		t.Error("dropped entry still served")
	}
}
