package registrytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/regchain/regchain/registry"
)

// deriveKey is the kit's key for Derive; otherKey another caller's.
type (
	deriveKey struct{}
	otherKey  struct {
		n   int
		any any
	}
)

// derivation is what the kit's derive makes of a state: the state and a
// serial number that tells one call of derive from another.
type derivation struct {
	ins    []*registry.Instance
	serial int64
}

// deriveFunc is registry.Derive or a registry.Memo's Derive.
type deriveFunc func(ctx context.Context, r registry.Registry, name string, key any, derive func([]*registry.Instance) any) (any, error)

// testDerive holds registry.Derive (a Deriver, or the fallback) to its
// promise: derive sees the same state as GetService; under a Deriver it
// runs once per state and key (from any number of goroutines, through a
// republish of the same state), again after a change, and per key; an
// uncomparable key is ErrInvalid; an unknown service is ErrNotFound without
// calling derive.
func testDerive(t *testing.T, k *kit) {
	_, memo := k.r.(registry.Deriver)
	if !memo {
		t.Logf("%T has no Deriver: checking the fallback", k.r)
	}
	testDeriveWith(t, k, "derive", registry.Derive, memo)
}

// testDeriveMemo holds a registry.Memo over the registry to the same
// promise, with a Deriver or without: once per state and key.
func testDeriveMemo(t *testing.T, k *kit) {
	var m registry.Memo
	testDeriveWith(t, k, "memo", m.Derive, true)
}

func testDeriveWith(t *testing.T, k *kit, name string, deriveVia deriveFunc, memo bool) {
	svc := k.service(name)
	i1, i2 := k.instance(svc, "i1", 9970), k.instance(svc, "i2", 9975)
	k.registerAll(t, svc, i1, i2)
	var serial atomic.Int64
	derive := func(ins []*registry.Instance) any {
		return &derivation{ins: registry.CloneInstances(ins), serial: serial.Add(1)}
	}
	read := func(key any) (*derivation, error) {
		v, err := deriveVia(ctxT(t), k.r, svc, key, derive)
		if err != nil {
			return nil, err
		}
		d, ok := v.(*derivation)
		if !ok {
			return nil, fmt.Errorf("registry.Derive returned %T, not derive's value", v)
		}
		return d, nil
	}
	var first *derivation
	eventually(t, "Derive("+svc+")", func() string {
		d, err := read(deriveKey{})
		if err != nil {
			return err.Error()
		}
		if !registry.EqualInstances(d.ins, []*registry.Instance{i1, i2}) {
			return fmt.Sprintf("derive saw %s, want %s", describe(d.ins), describe([]*registry.Instance{i1, i2}))
		}
		first = d
		return ""
	})
	if memo {
		// An unchanged service keeps its value, also through a republish
		// of the same state (the chain's watch confirming a first read).
		n := serial.Load()
		for range 20 {
			d, err := read(deriveKey{})
			if err != nil {
				t.Fatal(err)
			}
			if d != first {
				t.Fatalf("Derive of an unchanged service returned value %d, then %d", first.serial, d.serial)
			}
		}
		if serial.Load() != n {
			t.Errorf("Derive ran derive %d times for an unchanged service", serial.Load()-n)
		}
		// Goroutines racing on a new key: derive runs once, every one of
		// them gets its value.
		var wg sync.WaitGroup
		got := make([]*derivation, 8)
		errs := make([]error, len(got))
		n = serial.Load()
		for g := range got {
			wg.Go(func() { got[g], errs[g] = read(otherKey{n: 1}) })
		}
		wg.Wait()
		for g, d := range got {
			if errs[g] != nil {
				t.Fatalf("concurrent Derive: %v", errs[g])
			}
			if d != got[0] {
				t.Errorf("concurrent Derives of one key returned values %d and %d", got[0].serial, d.serial)
			}
			if !registry.EqualInstances(d.ins, []*registry.Instance{i1, i2}) {
				t.Errorf("concurrent Derive of an unchanged service saw %s", describe(d.ins))
			}
		}
		if ran := serial.Load() - n; ran != 1 {
			t.Errorf("%d concurrent Derives of a new key ran derive %d times, want once", len(got), ran)
		}
		// The keys keep their own values.
		if got[0] == first {
			t.Errorf("Derive with another key returned the first key's value")
		}
		if d, err := read(deriveKey{}); err != nil || d != first {
			t.Errorf("Derive(first key) after another key = %v, %v, want the first value", d, err)
		}
		if d, err := read(otherKey{n: 1}); err != nil || d != got[0] {
			t.Errorf("Derive(other key) again = %v, %v, want its first value", d, err)
		}
	}

	// A change makes a new value from the new state.
	i1b := i1.Clone()
	i1b.Metadata["weight"] = "55"
	k.register(t, i1b)
	k.waitInstances(t, svc, i1b, i2)
	eventually(t, "Derive sees the update", func() string {
		d, err := read(deriveKey{})
		if err != nil {
			return err.Error()
		}
		if !registry.EqualInstances(d.ins, []*registry.Instance{i1b, i2}) {
			return fmt.Sprintf("derive saw %s", describe(d.ins))
		}
		if d == first {
			return "Derive still returns the first state's value"
		}
		return ""
	})
	if !registry.EqualInstances(first.ins, []*registry.Instance{i1, i2}) {
		t.Errorf("the first value changed with the state: %s", describe(first.ins))
	}

	before := serial.Load()
	_, err := deriveVia(ctxT(t), k.r, k.service("none"), deriveKey{}, derive)
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Derive(unknown) error = %v, want ErrNotFound", err)
	}
	if serial.Load() != before {
		t.Errorf("Derive(unknown) called derive")
	}
	// Keys that cannot be compared: a slice, and a comparable type holding
	// one (twice: the second call would compare it with a stored key).
	for _, key := range []any{[]string{"not comparable"}, otherKey{any: []int{1}}, otherKey{any: []int{1}}} {
		before := serial.Load()
		_, err := deriveVia(ctxT(t), k.r, svc, key, derive)
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Derive with key %#v: error %v, want ErrInvalid", key, err)
		}
		if serial.Load() != before {
			t.Errorf("Derive with key %#v called derive", key)
		}
	}
}
