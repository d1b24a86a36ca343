// Package statecache keeps, per service name, a value derived from the
// last state a registry.SharedReader returned — a framework's conversion of
// it, for the plugins — so that a read derives it once per state change.
//
// A state is recognised by identity: a SharedReader's Instances never
// change once returned, so the same Instance pointers in the same order are
// the same state. When the pointers differ, equal content (in the same
// order, endpoints included) still reuses the value, so that a state
// republished with new Instances (the chain does so when its watch confirms
// what a first read loaded) is not converted again. An entry lives until
// its service is dropped; entries are as many as the service names read.
package statecache

import (
	"slices"
	"sync"

	"github.com/regchain/regchain/registry"
)

// Cache maps service names to the value derived from their last state. The
// zero value is ready. A Cache is safe for concurrent use; the values are
// shared by every reader and must not change once put.
type Cache[V any] struct {
	mu sync.RWMutex // guards m
	m  map[string]*entry[V]
}

type entry[V any] struct {
	from []*registry.Instance // the state the value was derived from
	v    V
}

// Get returns the value derived from ins, if the cache holds it for name:
// from the same state, or from one with equal content (which ins then takes
// over as the entry's identity).
func (c *Cache[V]) Get(name string, ins []*registry.Instance) (V, bool) {
	c.mu.RLock()
	e := c.m[name]
	c.mu.RUnlock()
	switch {
	case e == nil:
	case SameState(e.from, ins):
		return e.v, true
	case SameContent(e.from, ins):
		c.Put(name, ins, e.v)
		return e.v, true
	}
	var zero V
	return zero, false
}

// Put stores v as derived from ins for name.
func (c *Cache[V]) Put(name string, ins []*registry.Instance, v V) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]*entry[V])
	}
	c.m[name] = &entry[V]{from: ins, v: v}
	c.mu.Unlock()
}

// Drop forgets name.
func (c *Cache[V]) Drop(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// SameState reports whether a and b hold the same Instances in the same
// order.
func SameState(a, b []*registry.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// SameContent reports whether a and b hold equal Instances in the same
// order, endpoints in the same order too.
func SameContent(a, b []*registry.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) || (a[i] != nil && !slices.Equal(a[i].Endpoints, b[i].Endpoints)) {
			return false
		}
	}
	return true
}

// Has reports whether the cache holds an entry for name.
func (c *Cache[V]) Has(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.m[name]
	return ok
}
