package registry

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
)

// Derive reads through r's Deriver when it has one, and otherwise calls
// derive on GetServiceShared's answer, every time (an uncomparable key is
// ErrInvalid there too). Memo.Derive is the same with a memory for
// registries that are not Derivers.
func Derive(ctx context.Context, r Registry, name string, key any, derive func([]*Instance) any) (any, error) {
	if d, ok := r.(Deriver); ok {
		return d.Derive(ctx, name, key, derive)
	}
	if err := checkKey(name, key); err != nil {
		return nil, err
	}
	ins, err := GetServiceShared(ctx, r, name)
	if err != nil {
		return nil, err
	}
	return derive(ins), nil
}

// checkKey returns ErrInvalid for a key Derive cannot compare.
func checkKey(name string, key any) error {
	if key != nil && !reflect.ValueOf(key).Comparable() {
		return fmt.Errorf("registry: derive %s: key of type %T is not comparable: %w", Quote(name), key, ErrInvalid)
	}
	return nil
}

// MaxDerivedKeys is how many keys a StateMemo keeps values for; a caller
// beyond them gets its value made on every call, so that a caller making a
// key per call cannot grow a state's memory.
const MaxDerivedKeys = 8

// StateMemo holds the values derived from one state of a service, one per
// key: what a Deriver keeps with each state it serves (the chain does), and
// what Memo keeps per service for other registries. The zero value is
// empty and ready. A StateMemo is safe for concurrent use; its values are
// shared by every caller and must not change once made.
type StateMemo struct{ head atomic.Pointer[derived] }

// derived is one key's value in a StateMemo. The list only grows, by
// compare-and-swap of its head; an entry is in the list before its value
// is made, so that goroutines racing on a new key wait for one derive
// instead of each running their own.
type derived struct {
	key  any
	next *derived
	n    int // entries from this one to the end

	done atomic.Bool // val is set
	mu   sync.Mutex  // held while derive runs
	val  any
}

// Derive returns the value of key made of ins, the state's Instances: made
// by derive on the first call for key, every later call (from any
// goroutine; one that comes while derive runs waits for it) returns it
// without calling derive or allocating. name is for the error only: a key
// that is not comparable is ErrInvalid, and derive is not called. A derive
// that panics leaves the value unmade for the next call.
func (m *StateMemo) Derive(name string, ins []*Instance, key any, derive func([]*Instance) any) (any, error) {
	head := m.head.Load()
	if d := find(head, key); d != nil {
		return d.get(ins, derive), nil
	}
	if err := checkKey(name, key); err != nil {
		return nil, err
	}
	for {
		n := 0
		if head != nil {
			n = head.n
		}
		if n >= MaxDerivedKeys {
			return derive(ins), nil
		}
		d := &derived{key: key, next: head, n: n + 1}
		if m.head.CompareAndSwap(head, d) {
			return d.get(ins, derive), nil
		}
		// Another caller added an entry first: perhaps for this key.
		head = m.head.Load()
		if d := find(head, key); d != nil {
			return d.get(ins, derive), nil
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

func (d *derived) get(ins []*Instance, derive func([]*Instance) any) any {
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

// SameInstances reports whether a and b are the same state for a derived
// value: equal Instances in the same order, each with its endpoints in the
// same order (what a derived value may depend on). The same pointers are
// the same state at no cost.
func SameInstances(a, b []*Instance) bool {
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

// Memo keeps Deriver's promise over any registry: its Derive reads
// through the registry's Deriver when it has one, and otherwise keeps,
// per service name, the values derived from the last state it read (a
// StateMemo), so that derive runs once per state and key there too. The
// plugins and locality.Wrap read through one.
//
// Without a Deriver a state is recognised by the Instances
// GetServiceShared returns: the same ones in the same order (a
// SharedReader's unchanged state, at no cost), or equal ones (a state
// republished, or a registry that hands out copies: one comparison per
// read). Readers racing on a state wait for one derive. A service's entry
// is dropped when a read finds it absent (ErrNotFound); otherwise entries
// are as many as the service names read.
//
// The zero value is ready. A Memo is safe for concurrent use; it must not
// be copied after first use.
type Memo struct {
	mu sync.RWMutex // guards m
	m  map[string]*memoEntry
}

// memoEntry is a name's last state: the Instances it was last read with,
// and the values of that state.
type memoEntry struct {
	from []*Instance
	memo *StateMemo
}

// Derive is registry.Derive with a memory: see Memo.
func (m *Memo) Derive(ctx context.Context, r Registry, name string, key any, derive func([]*Instance) any) (any, error) {
	if d, ok := r.(Deriver); ok {
		return d.Derive(ctx, name, key, derive)
	}
	if err := checkKey(name, key); err != nil {
		return nil, err
	}
	ins, err := GetServiceShared(ctx, r, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			m.forget(name)
		}
		return nil, err
	}
	m.mu.RLock()
	e := m.m[name]
	m.mu.RUnlock()
	if e == nil || !sameState(e.from, ins) {
		e = m.enter(name, ins)
	}
	return e.memo.Derive(name, ins, key, derive)
}

// enter makes ins the entry of name, keeping its values when the entry
// held the same state.
func (m *Memo) enter(name string, ins []*Instance) *memoEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.m[name]
	switch {
	case e != nil && sameState(e.from, ins):
		return e
	case e != nil && SameInstances(e.from, ins):
		e = &memoEntry{from: ins, memo: e.memo}
	default:
		e = &memoEntry{from: ins, memo: new(StateMemo)}
	}
	if m.m == nil {
		m.m = make(map[string]*memoEntry)
	}
	m.m[name] = e
	return e
}

func (m *Memo) forget(name string) {
	m.mu.Lock()
	delete(m.m, name)
	m.mu.Unlock()
}

// sameState reports whether a and b hold the same Instances (pointers) in
// the same order.
func sameState(a, b []*Instance) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0] || slices.Equal(a, b))
}
