package chain

import (
	"context"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

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
