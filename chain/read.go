package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

// GetService implements registry.Registry. For a service the chain already
// watches it answers from memory without I/O. The first call for a service
// answers from the snapshot if it holds the service, else reads the first
// tier that is up (moving on only on registry.ErrUnavailable), and starts
// watching the service in every tier it may need.
//
// The returned instances are deep copies; see GetServiceShared for a cheaper
// read-only variant.
func (c *Chain) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	return registry.CloneInstances(v.u.Instances), nil
}

// GetServiceShared implements registry.SharedReader: GetService without
// the deep copy. The returned slice
// is the caller's, but the Instances it points to are shared with the chain
// and with other callers and must not be modified (they never change once
// published: a new state holds new Instances). It costs one allocation
// whatever the number of instances.
func (c *Chain) GetServiceShared(ctx context.Context, name string) ([]*registry.Instance, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	ins := v.u.Instances
	out := make([]*registry.Instance, len(ins)) // with the copy: one makeslicecopy, no zeroing pass
	copy(out, ins)
	return out, nil
}

func (c *Chain) lookup(ctx context.Context, name string) (*state, error) {
	c.mu.RLock()
	s, closed := c.services[name], c.closed
	c.mu.RUnlock()
	if closed {
		return nil, c.errClosed("get " + name)
	}
	if s != nil {
		if !s.used.Load() {
			s.used.Store(true)
		}
		if v := s.cur.Load(); v != nil {
			return v, v.check(name)
		}
	} else if err := registry.ValidateName(name); err != nil {
		return nil, err
	}
	for {
		var err error
		if s == nil {
			if s, err = c.service(name); err != nil {
				return nil, err
			}
			s.used.Store(true)
		}
		v, err := s.await(ctx)
		if errors.Is(err, errEvicted) {
			s = nil
			continue
		}
		if err != nil {
			return nil, err
		}
		return v, v.check(name)
	}
}

// errEvicted is returned by a service removed from memory (idle, absent, or
// over the cap) while a caller held it: the caller takes a fresh one.
var errEvicted = errors.New("chain: service evicted")

// await returns the service's state, waiting within ctx for the first one
// while one is on its way (a tier's first state, within the hedge delay
// or the call timeout); when nothing serves the service and nothing is on
// its way it returns the error decide found at once.
func (s *service) await(ctx context.Context) (*state, error) {
	for {
		s.mu.Lock()
		if v := s.cur.Load(); v != nil {
			s.mu.Unlock()
			return v, nil
		}
		if s.closed {
			err := s.c.errClosed("get " + s.name)
			if s.evicted {
				err = errEvicted
			}
			s.mu.Unlock()
			return nil, err
		}
		if s.firstErr != nil {
			// Decided a while ago: decide again, something may be up now.
			s.recomputeLocked(time.Now(), false, false)
			if v := s.cur.Load(); v != nil {
				s.mu.Unlock()
				return v, nil
			}
			if err := s.firstErr; err != nil {
				s.mu.Unlock()
				return nil, err
			}
		}
		ready := s.ready
		s.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("chain: get %s: %w", registry.Quote(s.name), ctx.Err())
		}
	}
}

// GetServiceWithInfo is GetService that also says where the instances come
// from and how old they are, taken from the same state (a GetService then
// a Status could see two different states). The Instances are deep copies,
// the caller's.
func (c *Chain) GetServiceWithInfo(ctx context.Context, name string) (Answer, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return Answer{}, err
	}
	return Answer{
		Instances: registry.CloneInstances(v.u.Instances),
		Source:    v.u.Source,
		Time:      v.u.Time,
		Stale:     c.stale(v),
	}, nil
}

// stale reports whether v is served from the snapshot or from a tier that
// is down.
func (c *Chain) stale(v *state) bool {
	if v.mask == 0 {
		return true
	}
	for m := v.mask; m != 0; m &= m - 1 {
		if !c.tiers[lowest(m, len(c.tiers))].isUp() {
			return true
		}
	}
	return false
}

// View is a read-only handle on one service's current state, shared with
// the chain: taking one copies nothing and allocates nothing, which suits
// per-request load balancing. A View never changes; Lookup again for a
// newer one. The Instances it hands out are shared with the chain and with
// other readers and must not be modified.
//
// The zero View is empty.
type View struct{ u *registry.Update }

// Lookup returns the service's view, with GetService's errors (ErrNotFound
// when it has no instances, ErrUnavailable when nothing can serve it).
func (c *Chain) Lookup(ctx context.Context, name string) (View, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return View{}, err
	}
	return View{v.u}, nil
}

// Len returns the number of instances.
func (v View) Len() int {
	if v.u == nil {
		return 0
	}
	return len(v.u.Instances)
}

// At returns instance i (0 <= i < Len), sorted by ID. It must not be
// modified.
func (v View) At(i int) *registry.Instance { return v.u.Instances[i] }

// Instances returns the instances in a new slice (one allocation); the
// Instances themselves are shared and must not be modified.
func (v View) Instances() []*registry.Instance {
	if v.u == nil {
		return nil
	}
	return slices.Clone(v.u.Instances)
}

// Source returns the tier (tiers joined by "+", or "snapshot") the state
// came from.
func (v View) Source() string {
	if v.u == nil {
		return ""
	}
	return v.u.Source
}

// Time returns when the source last confirmed the state.
func (v View) Time() time.Time {
	if v.u == nil {
		return time.Time{}
	}
	return v.u.Time
}

// Answer is a service's instances together with where they come from and
// how old they are, all taken from one state (GetServiceWithInfo).
type Answer struct {
	// Instances are deep copies, the caller's.
	Instances []*registry.Instance
	// Source is the tier (tiers joined by "+", or "snapshot") the state
	// came from.
	Source string
	// Time is when the source last confirmed the state.
	Time time.Time
	// Stale is true when the state is served from the snapshot or from a
	// tier that is down: no live registry stands behind it right now.
	Stale bool
}

// Age returns how old the state is at now.
func (a Answer) Age(now time.Time) time.Duration { return now.Sub(a.Time) }

// Derive implements registry.Deriver: GetServiceShared's lookup, then the
// value derive made of this state for key, made now if it has not been.
// Values live in the state they were made of (its registry.StateMemo); a
// state republished with the same Instances (equal, endpoints in the same
// order) keeps them (carryMemo).
func (c *Chain) Derive(ctx context.Context, name string, key any, derive func([]*registry.Instance) any) (any, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	return v.derive(name, key, derive)
}

// derive is Derive on the state v: the value of key made of v's Instances.
func (v *state) derive(name string, key any, derive func([]*registry.Instance) any) (any, error) {
	return v.memo.Derive(name, v.u.Instances, key, derive)
}
