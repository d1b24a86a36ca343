package chain_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/regchain/regchain/chain"

	"github.com/regchain/regchain/registry"
)

// A state keeps values for a few keys; beyond them, derive runs on every
// call (a caller that makes a key per call cannot grow a state's memory),
// and the keys already kept still answer from memory.
func TestDeriveKeyCap(t *testing.T) { synctest.Test(t, testDeriveKeyCap) }

func testDeriveKeyCap(t *testing.T) {
	ctx := context.Background()
	c := threeInstances(t)
	var calls atomic.Int64
	derive := func(ins []*registry.Instance) any { calls.Add(1); return len(ins) }
	type key struct{ n int }
	for n := range 20 {
		for range 3 {
			v, err := c.Derive(ctx, "svc", key{n}, derive)
			if err != nil || v != 3 {
				t.Fatalf("Derive(key %d) = %v, %v, want 3", n, v, err)
			}
		}
	}
	// 8 keys once each, 12 keys three times each.
	if got := calls.Load(); got != 8+12*3 {
		t.Errorf("derive ran %d times, want %d", got, 8+12*3)
	}
	before := calls.Load()
	for n := range 8 {
		if _, err := c.Derive(ctx, "svc", key{n}, derive); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != before {
		t.Errorf("a kept key ran derive again")
	}
}

// Goroutines racing to derive new keys of one state all get, per key, the
// one value stored.
func TestDeriveRace(t *testing.T) { synctest.Test(t, testDeriveRace) }

func testDeriveRace(t *testing.T) {
	ctx := context.Background()
	c := threeInstances(t)
	type key struct{ n int }
	var serial atomic.Int64
	derive := func([]*registry.Instance) any { return serial.Add(1) }
	got := make([][4]any, 8)
	var wg sync.WaitGroup
	for g := range got {
		wg.Go(func() {
			for n := range 4 {
				v, err := c.Derive(ctx, "svc", key{n}, derive)
				if err != nil {
					t.Error(err)
				}
				got[g][n] = v
			}
		})
	}
	wg.Wait()
	for n := range 4 {
		v, err := c.Derive(ctx, "svc", key{n}, derive)
		if err != nil {
			t.Fatal(err)
		}
		for g := range got {
			if got[g][n] != v {
				t.Errorf("goroutine %d got %v for key %d, the state keeps %v", g, got[g][n], n, v)
			}
		}
	}
}

// threeInstances returns a chain over one Memory tier holding svc with
// three instances, read once and settled (the tier's watch has confirmed
// the first read's state, which republishes it): run in a synctest bubble.
func threeInstances(t *testing.T) *chain.Chain {
	t.Helper()
	ctx := context.Background()
	mems, tiers := memTiers(1)
	for _, id := range []string{"a", "b", "c"} {
		if err := mems[0].Register(ctx, &registry.Instance{ID: id, Name: "svc", Endpoints: []string{"grpc://10.0.0.1:9000"}}); err != nil {
			t.Fatal(err)
		}
	}
	c := newChain(t, tiers)
	t.Cleanup(func() { c.Close(); mems[0].Close() })
	if _, err := c.GetService(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	return c
}
