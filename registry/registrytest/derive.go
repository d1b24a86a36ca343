package registrytest

import (
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
	otherKey  struct{ n int }
)

// derivation is what the kit's derive makes of a state: the state and a
// serial number that tells one call of derive from another.
type derivation struct {
	ins    []*registry.Instance
	serial int64
}

// testDerive holds registry.Derive (a Deriver, or the fallback) to its
// promise: derive sees the same state as GetService; under a Deriver it
// runs once per state and key (from any number of goroutines), again after
// a change, and per key; an uncomparable key is ErrInvalid; an unknown
// service is ErrNotFound without calling derive.
func testDerive(t *testing.T, k *kit) {
	svc := k.service("derive")
	i1, i2 := k.instance(svc, "i1", 9970), k.instance(svc, "i2", 9975)
	k.register(t, i1)
	k.register(t, i2)
	k.waitInstances(t, svc, i1, i2)
	_, memo := k.r.(registry.Deriver)
	if !memo {
		t.Logf("%T has no Deriver: checking the fallback", k.r)
	}
	var serial atomic.Int64
	derive := func(ins []*registry.Instance) any {
		return &derivation{ins: registry.CloneInstances(ins), serial: serial.Add(1)}
	}
	read := func(key any) (*derivation, error) {
		v, err := registry.Derive(ctxT(t), k.r, svc, key, derive)
		if err != nil {
			return nil, err
		}
		d, ok := v.(*derivation)
		if !ok {
			return nil, fmt.Errorf("Derive returned %T, not derive's value", v)
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
		// Two reads in a row of an unchanged service: one value, derive
		// not run between them. (A registry may republish a state it
		// confirmed, which makes one new value: hence eventually.)
		eventually(t, "Derive memoizes", func() string {
			a, err := read(deriveKey{})
			if err != nil {
				return err.Error()
			}
			n := serial.Load()
			b, err := read(deriveKey{})
			if err != nil {
				return err.Error()
			}
			if a != b || serial.Load() != n {
				return fmt.Sprintf("two reads gave values %d and %d; derive ran %d times between", a.serial, b.serial, serial.Load()-n)
			}
			return ""
		})
		// Many goroutines at once get the same value (at most one per
		// state they saw), each of the current state.
		var wg sync.WaitGroup
		got := make([]*derivation, 8)
		errs := make([]error, len(got))
		for g := range got {
			wg.Go(func() { got[g], errs[g] = read(deriveKey{}) })
		}
		wg.Wait()
		distinct := map[*derivation]bool{}
		for g, d := range got {
			if errs[g] != nil {
				t.Fatalf("concurrent Derive: %v", errs[g])
			}
			distinct[d] = true
			if !registry.EqualInstances(d.ins, []*registry.Instance{i1, i2}) {
				t.Errorf("concurrent Derive of an unchanged service saw %s", describe(d.ins))
			}
		}
		if len(distinct) > 2 {
			t.Errorf("%d concurrent Derives of an unchanged service returned %d different values", len(got), len(distinct))
		}
		// Another key gets its own value.
		o, err := read(otherKey{1})
		if err != nil {
			t.Fatalf("Derive with another key: %v", err)
		}
		if o == first || o.serial == first.serial {
			t.Errorf("Derive with another key returned the first key's value")
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
	_, err := registry.Derive(ctxT(t), k.r, k.service("none"), deriveKey{}, derive)
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Derive(unknown) error = %v, want ErrNotFound", err)
	}
	if serial.Load() != before {
		t.Errorf("Derive(unknown) called derive")
	}
	if memo {
		_, err := registry.Derive(ctxT(t), k.r, svc, []string{"not comparable"}, derive)
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Derive with a slice key error = %v, want ErrInvalid", err)
		}
	}
}
