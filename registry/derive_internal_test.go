package registry

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

// shared is a SharedReader whose state the test sets: Memo's input.
type shared struct {
	Registry // nil: only GetServiceShared is called
	mu       sync.Mutex
	ins      []*Instance
}

func (r *shared) set(ins []*Instance) {
	r.mu.Lock()
	r.ins = ins
	r.mu.Unlock()
}

func (r *shared) GetServiceShared(context.Context, string) ([]*Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ins) == 0 {
		return nil, ErrNotFound
	}
	return slices.Clone(r.ins), nil
}

func testState() []*Instance {
	return []*Instance{
		{ID: "a", Name: "s", Endpoints: []string{"grpc://10.0.0.1:1", "http://10.0.0.1:2"}, Metadata: map[string]string{"k": "v"}},
		{ID: "b", Name: "s", Endpoints: []string{"grpc://10.0.0.2:1"}},
	}
}

type memoKey struct{}

// A state republished with new but equal Instances reuses the value and
// becomes the entry's identity; a changed one does not reuse it; a read
// that finds the service absent drops its entry.
func TestMemoContent(t *testing.T) {
	ctx := context.Background()
	ins := testState()
	r := &shared{ins: ins}
	var m Memo
	var made atomic.Int64
	derive := func([]*Instance) any { made.Add(1); return new(int) }
	get := func(state []*Instance) any {
		t.Helper()
		r.set(state)
		v, err := m.Derive(ctx, r, "s", memoKey{}, derive)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := get(ins)
	if got := get(slices.Clone(ins)); got != v {
		t.Fatal("the same Instances in a new slice: value not reused")
	}
	again := CloneInstances(ins)
	if got := get(again); got != v {
		t.Fatal("equal content: value not reused")
	}
	m.mu.RLock()
	identity := m.m["s"].from
	m.mu.RUnlock()
	if !sameState(identity, again) {
		t.Fatal("the new Instances are not the cached identity")
	}
	if made.Load() != 1 {
		t.Fatalf("derive ran %d times for one state, want once", made.Load())
	}
	reordered := CloneInstances(ins)
	slices.Reverse(reordered[0].Endpoints)
	changed := CloneInstances(ins)
	changed[1].Metadata = map[string]string{"k": "w"}
	for _, s := range [][]*Instance{reordered, changed, ins[:1]} {
		if got := get(s); got == v {
			t.Errorf("different state %v: value reused", s)
		}
	}
	r.set(nil)
	if _, err := m.Derive(ctx, r, "s", memoKey{}, derive); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Derive of an absent service = %v, want ErrNotFound", err)
	}
	m.mu.RLock()
	_, held := m.m["s"]
	m.mu.RUnlock()
	if held {
		t.Error("dropped entry still held")
	}
	if got := get(ins); got == v {
		t.Error("dropped entry still served")
	}
}

// Readers racing on one state, some holding its first Instances and some a
// republished copy, get one value, made once: the second reader comes
// while the first one's derive runs.
func TestMemoRaceAcrossRepublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		old := testState()
		republished := CloneInstances(old)
		for _, order := range [][2][]*Instance{{old, republished}, {republished, old}} {
			var m Memo
			var made atomic.Int64
			release := make(chan struct{})
			derive := func([]*Instance) any {
				made.Add(1)
				<-release
				return new(int)
			}
			got := make([]any, 2)
			var wg sync.WaitGroup
			for i, ins := range order {
				r := &shared{ins: ins}
				wg.Go(func() { got[i], _ = m.Derive(ctx, r, "s", memoKey{}, derive) })
				if i == 0 {
					synctest.Wait() // the first reader is in derive
				}
			}
			close(release)
			wg.Wait()
			if made.Load() != 1 || got[0] != got[1] {
				t.Errorf("derive ran %d times, values %p and %p; want once, one value", made.Load(), got[0], got[1])
			}
		}
	})
}

// A derive that panics leaves the value unmade: the next reader makes it.
func TestMemoPanic(t *testing.T) {
	ctx := context.Background()
	r := &shared{ins: testState()}
	var m Memo
	func() {
		defer func() { recover() }()
		m.Derive(ctx, r, "s", memoKey{}, func([]*Instance) any { panic("boom") })
	}()
	if got, err := m.Derive(ctx, r, "s", memoKey{}, func([]*Instance) any { return 7 }); err != nil || got != 7 {
		t.Errorf("after a panicking derive, Derive = %v, %v; want 7", got, err)
	}
}

// A StateMemo keeps values for MaxDerivedKeys keys; beyond them derive
// runs on every call, and the keys kept still answer from memory. An
// uncomparable key is ErrInvalid without calling derive.
func TestStateMemoKeys(t *testing.T) {
	var m StateMemo
	ins := testState()
	var calls atomic.Int64
	derive := func(ins []*Instance) any { calls.Add(1); return len(ins) }
	type key struct{ n int }
	for n := range MaxDerivedKeys + 4 {
		for range 3 {
			if v, err := m.Derive("s", ins, key{n}, derive); err != nil || v != 2 {
				t.Fatalf("Derive(key %d) = %v, %v, want 2", n, v, err)
			}
		}
	}
	if got, want := calls.Load(), int64(MaxDerivedKeys+4*3); got != want {
		t.Errorf("derive ran %d times, want %d", got, want)
	}
	type holder struct{ v any }
	for _, k := range []any{[]int{1}, holder{[]int{1}}} {
		before := calls.Load()
		if _, err := m.Derive("s", ins, k, derive); !errors.Is(err, ErrInvalid) {
			t.Errorf("key %T: error %v, want ErrInvalid", k, err)
		}
		if calls.Load() != before {
			t.Errorf("key %T: derive called", k)
		}
	}
}
