package chain

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/regchain/regchain/registry"
)

// maxDerived is how many keys a state keeps derived values for; a caller
// beyond them gets its value computed on every call.
const maxDerived = 8

// derived is one key's value in a view's list; the list only grows, by
// compare-and-swap of its head, and dies with the view.
type derived struct {
	key  any
	val  any
	next *derived
	n    int // entries from this one to the end
}

// derivedList is a view's memo of derived values.
type derivedList struct{ head atomic.Pointer[derived] }

// Derive implements registry.Deriver: GetServiceShared's lookup, then the
// value derive made of this state for key, made now if it has not been.
// Values live in the state (the view) they were made of, so they are
// dropped with it.
func (c *Chain) Derive(ctx context.Context, name string, key any, derive func([]*registry.Instance) any) (any, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	head := v.memo.head.Load()
	for d := head; d != nil; d = d.next {
		if d.key == key {
			return d.val, nil
		}
	}
	if key != nil && !reflect.TypeOf(key).Comparable() {
		return nil, fmt.Errorf("chain: derive %q: key of type %T is not comparable: %w", name, key, registry.ErrInvalid)
	}
	val := derive(v.u.Instances)
	for {
		n := 0
		if head != nil {
			n = head.n
		}
		if n >= maxDerived {
			return val, nil
		}
		if v.memo.head.CompareAndSwap(head, &derived{key: key, val: val, next: head, n: n + 1}) {
			return val, nil
		}
		// Another caller stored first: if it stored this key, its value
		// is the one every caller gets.
		head = v.memo.head.Load()
		for d := head; d != nil; d = d.next {
			if d.key == key {
				return d.val, nil
			}
		}
	}
}
