package chain

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/regchain/regchain/registry"
)

// maxDerived is how many keys a state keeps derived values for; a caller
// beyond them gets its value computed on every call.
const maxDerived = 8

// derived is one key's value in a view's list. The list only grows, by
// compare-and-swap of its head; an entry is in the list before its value
// is made, so that goroutines racing on a new state wait for one derive
// instead of each running their own.
type derived struct {
	key  any
	next *derived
	n    int // entries from this one to the end

	done atomic.Bool // val is set
	mu   sync.Mutex  // held while derive runs
	val  any
}

// derivedList is the memo of derived values of one state. Every view of
// the state shares it (see carryMemo), so that a caller holding the view
// published before a republish and one holding the view after it add to,
// and find, the same entries.
type derivedList struct{ head atomic.Pointer[derived] }

// Derive implements registry.Deriver: GetServiceShared's lookup, then the
// value derive made of this state for key, made now if it has not been.
// Values live in the state (the view) they were made of; a state
// republished with the same Instances (equal, endpoints in the same order)
// keeps them.
func (c *Chain) Derive(ctx context.Context, name string, key any, derive func([]*registry.Instance) any) (any, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	return v.derive(name, key, derive)
}

// derive is Derive on the view v: the value of key made of v's state.
func (v *state) derive(name string, key any, derive func([]*registry.Instance) any) (any, error) {
	head := v.memo.head.Load()
	if d := find(head, key); d != nil {
		return d.get(v.u.Instances, derive), nil
	}
	if key != nil && !reflect.ValueOf(key).Comparable() {
		return nil, fmt.Errorf("chain: derive %q: key %#v is not comparable: %w", name, key, registry.ErrInvalid)
	}
	for {
		n := 0
		if head != nil {
			n = head.n
		}
		if n >= maxDerived {
			return derive(v.u.Instances), nil
		}
		d := &derived{key: key, next: head, n: n + 1}
		if v.memo.head.CompareAndSwap(head, d) {
			return d.get(v.u.Instances, derive), nil
		}
		// Another caller added an entry first: perhaps for this key.
		head = v.memo.head.Load()
		if d := find(head, key); d != nil {
			return d.get(v.u.Instances, derive), nil
		}
	}
}

// find returns the entry of key in the list from d, nil if it has none.
func find(d *derived, key any) *derived {
	for ; d != nil; d = d.next {
		if d.key == key {
			return d
		}
	}
	return nil
}

// get returns the entry's value, made by derive of ins on the first call:
// the others wait for it. A derive that panics leaves it unmade for the
// next call.
func (d *derived) get(ins []*registry.Instance, derive func([]*registry.Instance) any) any {
	if d.done.Load() {
		return d.val
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done.Load() {
		d.val = derive(ins)
		d.done.Store(true)
	}
	return d.val
}

// carryMemo makes nv share old's memo when both hold the same Instances:
// equal, in the same order, each with its endpoints in the same order (what
// a derived value may depend on). It runs before nv is published, so the
// two views have one memo for as long as either is read: an entry a caller
// adds through old after the republish is found through nv, and the other
// way round.
func carryMemo(old, nv *state) {
	if old == nil || old == nv || old.memo == nil || !sameInstances(old.u.Instances, nv.u.Instances) {
		return
	}
	nv.memo = old.memo
}

func sameInstances(a, b []*registry.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && (!a[i].Equal(b[i]) || !slices.Equal(a[i].Endpoints, b[i].Endpoints)) {
			return false
		}
	}
	return true
}
