package chain

import (
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

// state is what the readers of one service see: one state of it, where it
// came from and until when it may be served. It is immutable once stored
// (service.state); a change stores a new one.
type state struct {
	u       *registry.Update    // Instances sorted, never modified
	mask    uint64              // tiers the state came from; 0: the snapshot
	expires time.Time           // a snapshot state with a max age: when it stops being served (rule 6)
	memo    *registry.StateMemo // values derived from u (Derive), shared by every state of the same Instances
}

// newState returns the state of u.
func newState(u *registry.Update, mask uint64, expires time.Time) *state {
	return &state{u: u, mask: mask, expires: expires, memo: new(registry.StateMemo)}
}

// expired reports whether the state is a snapshot state older than the max
// age at now: it is kept (it is what the chain knows) but not served.
func (v *state) expired(now time.Time) bool {
	return !v.expires.IsZero() && now.After(v.expires)
}

// tooOld is the error an expired state is answered with.
func (v *state) tooOld(op, name string) error {
	return fmt.Errorf("chain: %s %s: %w: no tier can serve it and the snapshot state (of %s) is older than the max age", op, registry.Quote(name), registry.ErrUnavailable, v.u.Time.UTC().Format(time.RFC3339))
}

// check turns a state into GetService's error, if any.
func (v *state) check(name string) error {
	if !v.expires.IsZero() && v.expired(time.Now()) {
		return v.tooOld("get", name)
	}
	if len(v.u.Instances) == 0 {
		return fmt.Errorf("chain: get %s (source %s): %w", registry.Quote(name), v.u.Source, registry.ErrNotFound)
	}
	return nil
}

// publishable returns a copy of the state's Update a Feed may own: a fresh
// slice over the shared, never-modified Instances (Feed.Next deep-copies
// them for its reader).
func (v *state) publishable() *registry.Update { return shallow(v.u) }

func shallow(u *registry.Update) *registry.Update {
	cp := *u
	cp.Instances = slices.Clone(u.Instances)
	if cp.Instances == nil {
		cp.Instances = []*registry.Instance{}
	}
	return &cp
}

// A set of tiers is a mask: bit i for tier i, 0 for the snapshot alone.

func bit(i int) uint64 { return 1 << uint(i) }

// lowest returns the index of the first tier of mask, n for the snapshot.
func lowest(mask uint64, n int) int {
	if mask == 0 {
		return n
	}
	return bits.TrailingZeros64(mask)
}

// carryMemo makes nv share old's memo when both hold the same Instances:
// equal, in the same order, each with its endpoints in the same order (what
// a derived value may depend on). It runs before nv is published, so the
// two views have one memo for as long as either is read: an entry a caller
// adds through old after the republish is found through nv, and the other
// way round.
func carryMemo(old, nv *state) {
	if old == nil || old == nv || old.memo == nil || !registry.SameInstances(old.u.Instances, nv.u.Instances) {
		return
	}
	nv.memo = old.memo
}
