// Package statecache keeps, per service name, a value derived from the
// last state a registry.SharedReader returned — a framework's conversion of
// it, for the plugins — so that a read derives it once per state change.
//
// A state is recognised by identity: a SharedReader's Instances never
// change once returned, so the same Instance pointers in the same order are
// the same state. Instances that differ as pointers but are equal (in the
// same order, endpoints included) are the same state republished (the
// chain does so when its watch confirms what a first read loaded): they
// share the value, made once. Readers racing on a state wait for one
// derivation, whichever of the state's Instances each of them holds. An
// entry lives until its service is dropped; entries are as many as the
// service names read.
package statecache

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/regchain/regchain/registry"
)

// Cache maps service names to the value derived from their last state. The
// zero value is ready. A Cache is safe for concurrent use; the values are
// shared by every reader and must not change once made.
type Cache[V any] struct {
	mu sync.RWMutex // guards m
	m  map[string]*entry[V]
}

// entry is a name's last state: the Instances it was last asked for with,
// and the value of their content, shared with the entries of the same
// content in other Instances.
type entry[V any] struct {
	from []*registry.Instance
	val  *value[V]
}

// value is made once, by the first reader of a state; the others wait.
type value[V any] struct {
	done atomic.Bool // v is set
	mu   sync.Mutex  // held while derive runs
	v    V
}

// Get returns the value derived from ins for name, made by derive on the
// first call for this state: the same Instances, or equal ones. Callers
// racing on one state wait for a single derive; a derive that panics
// leaves the value unmade for the next call.
func (c *Cache[V]) Get(name string, ins []*registry.Instance, derive func([]*registry.Instance) V) V {
	c.mu.RLock()
	e := c.m[name]
	c.mu.RUnlock()
	if e == nil || !SameState(e.from, ins) {
		e = c.enter(name, ins)
	}
	return e.val.get(ins, derive)
}

// enter makes ins the entry of name, keeping the value when the entry held
// the same content.
func (c *Cache[V]) enter(name string, ins []*registry.Instance) *entry[V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[name]
	switch {
	case e != nil && SameState(e.from, ins):
		return e
	case e != nil && SameContent(e.from, ins):
		e = &entry[V]{from: ins, val: e.val}
	default:
		e = &entry[V]{from: ins, val: new(value[V])}
	}
	if c.m == nil {
		c.m = make(map[string]*entry[V])
	}
	c.m[name] = e
	return e
}

func (v *value[V]) get(ins []*registry.Instance, derive func([]*registry.Instance) V) V {
	if v.done.Load() {
		return v.v
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.done.Load() {
		v.v = derive(ins)
		v.done.Store(true)
	}
	return v.v
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
