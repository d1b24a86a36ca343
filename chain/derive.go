package chain

import (
	"context"
	"fmt"
	"reflect"

	"github.com/regchain/regchain/registry"
)

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
		return nil, fmt.Errorf("chain: derive %s: key %#v is not comparable: %w", registry.Quote(name), key, registry.ErrInvalid)
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
