package chain

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regchain/regchain/internal/dropguard"
	"github.com/regchain/regchain/registry"
)

// This file holds the rules of what a service's readers see (the package
// documentation, "What readers see", says them in prose). decide is pure:
// no goroutines, timers, locks, clock or I/O. The service gathers its
// inputs (service.go, inputLocked), decide says what to serve, which tiers
// to watch and when to look again, and the service applies it.

// tierIn is what decide knows of one tier for one service.
type tierIn struct {
	name    string
	up      bool // circuit closed
	watched bool // the service has a watch on the tier now
	// data is the tier's latest state, nil: none. It may come from an
	// earlier watch (before an outage, or before the tier was last
	// unwatched): fresh says it comes from the current one.
	data   *registry.Update
	fresh  bool
	failed bool      // the current watch failed before its first state
	since  time.Time // when the current watch started (its first state is awaited since)
	stable bool      // may become the source again (hysteresis passed, or proven)
	auth   bool      // an authority for the service's absence (rule 3)
	// seen, for a tier that is down, is its last answer before it went
	// down: its watches confirmed their states until then (rule 4's max
	// age counts from the later of this and the state's Time). Zero for a
	// tier that is up: a state its current watch has not confirmed ages
	// from its own Time.
	seen time.Time
}

// keptSince returns when tier i's last state was last confirmed: its Time,
// or for a tier that is down the later of that and its last answer before
// it went down.
func (in *decideIn) keptSince(i int) time.Time {
	t := &in.tiers[i]
	if !t.up && t.seen.After(t.data.Time) {
		return t.seen
	}
	return t.data.Time
}

// heldDrop is a drop the guard keeps back (rule 5). It is a value: decide
// returns a new one rather than modify its input.
type heldDrop struct {
	base  *registry.Update // the state served when the drop was first held
	bmask uint64           // tiers base came from; 0: the snapshot
	mask  uint64           // tiers the held candidate came from
	count int              // instances the held candidate has
	since time.Time        // when the drop was first held
	reads int              // confirming re-reads so far, each still a drop
}

// guardEvent is what happened to a held drop in a decision.
type guardEvent int

const (
	evNone      guardEvent = iota
	evHeld                 // a drop is newly held
	evConfirmed            // a held drop was confirmed and goes through
	evDiscarded            // a held drop was superseded by a state that is not a drop
	evReleased             // the operator let a held drop through
)

// decideIn is everything decide looks at.
type decideIn struct {
	name    string
	now     time.Time
	policy  ReadPolicy
	frozen  bool
	pinned  bool // rolled back to the last known good state (rule 2)
	tiers   []tierIn
	cur     *state           // served now; nil: nothing yet
	snap    *registry.Update // the snapshot's serving state (Source "snapshot"); nil: none
	good    *registry.Update // the last known good state (Source "snapshot"); nil: none
	hold    *heldDrop        // nil: no held drop
	reread  bool             // a confirming re-read of hold's tiers has just been taken in
	release bool             // the operator released the hold: let the candidate through
	guard   Guard
	// ownRemoved holds the IDs of the service's instances the chain itself
	// deregistered lately: their removal is not part of a drop.
	ownRemoved map[string]bool
	// operator says cur was put there by Freeze or Rollback: the guard then
	// judges a candidate against the last state accepted from a tier (snap)
	// rather than against the operator's choice.
	operator bool
	// hedge is how long a first view waits for a tier's first state before
	// a lower tier's counts (WithHedgeDelay); callTimeout how long any other
	// view does (WithCallTimeout); maxAge how old a snapshot state may be
	// and still be served, and how long a down tier's last state stays in a
	// merge (WithSnapshotMaxAge; zero: no bound).
	hedge, callTimeout, maxAge time.Duration
}

// decision is decide's answer.
type decision struct {
	keep     bool             // leave the served state as it is
	u        *registry.Update // the state to serve, unless keep
	mask     uint64           // tiers u came from; 0: the snapshot
	expires  time.Time        // rule 6: when u, a snapshot state, stops being served; zero: never
	hold     *heldDrop        // the held drop after the decision; nil: none
	event    guardEvent
	unpin    bool   // the rollback ends: a tier has the service back
	operator bool   // u is served by Freeze or Rollback
	watch    uint64 // the tiers to watch the service in
	// recheck is when to decide again although nothing changed (a tier's
	// first state grows late, a served snapshot state grows too old);
	// zero: only on the next change.
	recheck time.Time
	// unavailable is set when there is nothing to serve and nothing on its
	// way (no tier up and waited for, no snapshot state): a first read
	// fails now rather than wait.
	unavailable bool
}

// decide applies the rules to in.
func decide(in *decideIn) decision {
	d := in.rules()
	// The tiers to watch follow the state served after the decision.
	next := in.cur
	if !d.keep && d.u != nil {
		next = &state{u: d.u, mask: d.mask}
	}
	d.watch = in.wanted(next)
	if !d.keep && d.u != nil && d.mask == 0 && in.maxAge > 0 {
		d.expires = d.u.Time.Add(in.maxAge)
	}
	d.recheck = in.recheck(d)
	return d
}

// rules applies rules 1 to 5 (rule 6 is the expiry decide adds).
func (in *decideIn) rules() decision {
	// Rule 1: frozen. A held drop stays as it is, neither confirmed nor
	// dropped: it goes on when the chain is unfrozen.
	if in.frozen {
		switch {
		case in.good != nil:
			return decision{u: in.good, operator: true, hold: in.hold}
		case in.snap != nil:
			return decision{u: in.snap, operator: true, hold: in.hold}
		}
		return decision{u: &registry.Update{Service: in.name, Instances: []*registry.Instance{}, Source: SnapshotSource, Time: in.now}, operator: true, hold: in.hold}
	}
	cand, mask, ok := in.candidate()
	// Rule 2: rolled back, until a tier has the service back.
	if in.pinned && in.good != nil {
		if !ok || mask == 0 || isDrop(in.good.Instances, cand.Instances, in.guard.share(), in.ownRemoved) {
			return decision{u: in.good, operator: true}
		}
		return decision{u: cand, mask: mask, unpin: true}
	}
	if !ok {
		return decision{keep: true, hold: in.hold, unavailable: in.cur == nil && !in.onItsWay()}
	}
	cur := in.cur
	if cur != nil && cur.mask == mask && (cur.u == cand || cur.u.SameState(cand)) {
		d := decision{u: cand, mask: mask}
		if in.hold != nil {
			d.event = evDiscarded
		}
		if cur.u == cand {
			d.keep = true
		}
		return d
	}
	// Rule 5: a drop from any tier is held until confirmed. States from
	// the snapshot are the chain's own and are not judged again.
	var base *registry.Update
	bmask := uint64(0)
	switch {
	case in.hold != nil:
		base, bmask = in.hold.base, in.hold.bmask
	case cur != nil && in.operator:
		base = in.snap
	case cur != nil:
		base, bmask = cur.u, cur.mask
	}
	if in.guard.Disabled || base == nil || mask == 0 || !isDrop(base.Instances, cand.Instances, in.guard.share(), in.ownRemoved) {
		d := decision{u: cand, mask: mask}
		if in.hold != nil {
			d.event = evDiscarded
		}
		return d
	}
	if in.release {
		return decision{u: cand, mask: mask, event: evReleased}
	}
	h := heldDrop{base: base, bmask: bmask, mask: mask, count: len(cand.Instances), since: in.now}
	ev := evHeld
	if in.hold != nil {
		h = *in.hold
		h.count = len(cand.Instances)
		ev = evNone
		if h.mask != mask {
			// The drop comes from other tiers now: their reads start over.
			h.mask, h.reads = mask, 0
		}
	}
	if in.reread {
		h.reads++
	}
	if dropguard.Settings(in.guard).Confirmed(h.reads, h.since, in.now) {
		return decision{u: cand, mask: mask, event: evConfirmed}
	}
	// While held, the held-back state is served with what the candidate
	// adds or changes: a hold keeps removals back, never arrivals.
	u, umask := heldUnion(base, bmask, cand, mask)
	if cur != nil && cur.mask == umask && cur.u.SameState(u) {
		return decision{keep: true, hold: &h, event: ev}
	}
	return decision{u: u, mask: umask, hold: &h, event: ev}
}

// limit is how long a tier's first state is waited for: a first view waits
// only the hedge delay, any other the call timeout.
func (in *decideIn) limit() time.Duration {
	if in.cur == nil {
		return in.hedge
	}
	return in.callTimeout
}

// pending reports whether tier i is up and watched (or about to be) and
// its current watch's first state is still on its way.
func (in *decideIn) pending(i int) bool {
	t := &in.tiers[i]
	return t.up && !t.fresh && !t.failed && (t.watched || in.wanted(in.cur)&bit(i) != 0)
}

// late reports whether tier i's first state has been waited for long
// enough: a state of a lower tier counts instead.
func (in *decideIn) late(i int) bool {
	t := &in.tiers[i]
	if t.failed {
		return true
	}
	return in.pending(i) && t.watched && in.now.Sub(t.since) >= in.limit()
}

// onItsWay reports whether some tier's first state may still come within
// the call timeout: until then a first read waits for it, even past the
// hedge delay (when no lower tier and no snapshot can answer instead).
func (in *decideIn) onItsWay() bool {
	for i, t := range in.tiers {
		if in.pending(i) && (!t.watched || in.now.Sub(t.since) < in.callTimeout) {
			return true
		}
	}
	return false
}

// candidate picks the state rules 3 and 4 say the tiers offer. ok is false
// when the served state should stay (nothing anywhere, or the next
// source's first state is on its way).
func (in *decideIn) candidate() (u *registry.Update, mask uint64, ok bool) {
	n := len(in.tiers)
	curIdx, curMask := n, uint64(0)
	if in.cur != nil {
		curMask = in.cur.mask
		curIdx = lowest(curMask, n)
	}
	var opinionless *registry.Update // an empty state from a tier that is no authority
	var omask uint64
	if in.policy == Merge {
		var parts []int
		waiting := false
		for i, t := range in.tiers {
			if in.pending(i) && !in.late(i) {
				waiting = true
			}
			d := t.data
			if d == nil {
				continue
			}
			if !t.up || !t.fresh {
				// A tier that is down, or whose current watch has not
				// answered yet: its last state still says who exists,
				// within the max age.
				if len(d.Instances) > 0 && (in.maxAge <= 0 || in.now.Sub(in.keptSince(i)) <= in.maxAge) && (curMask&bit(i) != 0 || curMask == 0) {
					parts = append(parts, i)
					mask |= bit(i)
				}
				continue
			}
			if curMask != 0 && curMask&bit(i) == 0 && !t.stable {
				continue // hysteresis before a tier joins
			}
			if len(d.Instances) == 0 && !t.auth {
				if opinionless == nil {
					opinionless, omask = d, bit(i)
				}
				continue
			}
			parts = append(parts, i)
			mask |= bit(i)
		}
		fresh := false
		for _, i := range parts {
			fresh = fresh || (in.tiers[i].up && in.tiers[i].fresh)
		}
		switch {
		case waiting && curMask == 0:
			// The first view, and the first after the snapshot's, waits for
			// every tier that is up (and not late).
			return in.meanwhile()
		case !fresh:
			// Only last states of tiers that are not answering: the
			// snapshot (or the current state) says the same.
		case len(parts) == 1:
			return in.tiers[parts[0]].data, mask, true
		default:
			return mergeStates(in.name, in.tiers, parts), mask, true
		}
		if waiting {
			return nil, 0, false
		}
	} else {
		for i, t := range in.tiers {
			if !t.up {
				continue
			}
			if !t.fresh {
				if i < curIdx && curIdx < n {
					continue // a failback candidate whose state is on its way
				}
				if in.pending(i) && !in.late(i) {
					// Keep serving until the new source answers; with no view
					// yet or the snapshot's, wait for the first tier rather
					// than take a lower one first (and switch again when it
					// answers).
					return in.meanwhile()
				}
				continue
			}
			d := t.data
			if i < curIdx && curIdx < n && !t.stable {
				continue // hysteresis
			}
			if len(d.Instances) == 0 && !t.auth {
				if opinionless == nil {
					opinionless, omask = d, bit(i)
				}
				continue // no opinion on a service it never held
			}
			return d, bit(i), true
		}
	}
	// No tier can serve: the snapshot serves the last state the chain
	// accepted; failing that, an empty state nobody contradicts.
	if in.snap != nil {
		return in.snap, 0, true
	}
	if opinionless != nil && (in.cur == nil || len(in.cur.u.Instances) == 0) {
		return opinionless, omask, true
	}
	return nil, 0, false
}

// meanwhile is the candidate while a tier's first state is awaited: none
// (the served state stays), but with nothing served yet, the snapshot's
// state if it holds one young enough to serve.
func (in *decideIn) meanwhile() (*registry.Update, uint64, bool) {
	if in.cur == nil && in.snap != nil && (in.maxAge <= 0 || !in.now.After(in.snap.Time.Add(in.maxAge))) {
		return in.snap, 0, true
	}
	return nil, 0, false
}

// wanted returns the tiers the service should be watched in while next is
// served: under Merge, and while nothing or the snapshot is served, every
// tier that is up; under FirstHealthy, the source, the tiers above it
// (failback candidates) and, down to the first tier that is up, not late
// and has an opinion (rule 3), the tiers that may have to answer instead.
func (in *decideIn) wanted(next *state) uint64 {
	n := len(in.tiers)
	cur := n
	if next != nil {
		cur = lowest(next.mask, n)
	}
	var m uint64
	if in.policy == Merge || cur == n {
		for i, t := range in.tiers {
			if t.up {
				m |= bit(i)
			}
		}
		return m
	}
	first := n
	for j, t := range in.tiers {
		if !t.up || (t.watched && in.late(j)) {
			continue
		}
		// A tier that said "empty" without authority is passed over, as
		// candidate does: the next one must be watched too.
		if t.fresh && len(t.data.Instances) == 0 && !t.auth {
			continue
		}
		first = j
		break
	}
	for i, t := range in.tiers {
		if t.up && i <= max(cur, first) {
			m |= bit(i)
		}
	}
	return m
}

// recheck returns when to decide again although nothing changes: the
// earliest moment a watched tier's first state grows late, or a snapshot
// state served grows too old.
func (in *decideIn) recheck(d decision) time.Time {
	var at time.Time
	earliest := func(t time.Time) {
		if t.After(in.now) && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for i, t := range in.tiers {
		if !t.watched || !in.pending(i) {
			continue
		}
		if !in.late(i) {
			earliest(t.since.Add(in.limit()))
		}
		if in.cur == nil {
			earliest(t.since.Add(in.callTimeout)) // a first read gives up
		}
	}
	if in.policy == Merge && in.maxAge > 0 && !d.keep {
		// A down tier's last state in the union leaves it once too old.
		for i, t := range in.tiers {
			if d.mask&bit(i) != 0 && t.data != nil && (!t.up || !t.fresh) {
				earliest(in.keptSince(i).Add(in.maxAge + time.Nanosecond))
			}
		}
	}
	if !d.expires.IsZero() {
		earliest(d.expires.Add(time.Nanosecond)) // expired means strictly after
	} else if d.keep && in.cur != nil && !in.cur.expires.IsZero() {
		earliest(in.cur.expires.Add(time.Nanosecond))
	}
	return at
}

// mergeStates unions the sorted instance lists of tiers[parts], the first
// part winning on equal IDs.
func mergeStates(name string, tiers []tierIn, parts []int) *registry.Update {
	states := make([]*registry.Update, len(parts))
	for j, i := range parts {
		states[j] = tiers[i].data
	}
	return union(name, states...)
}

// heldUnion is what a held drop serves: the candidate's instances, and
// those of base the candidate lacks.
func heldUnion(base *registry.Update, bmask uint64, cand *registry.Update, mask uint64) (*registry.Update, uint64) {
	if adds(base, cand) == 0 {
		return base, bmask
	}
	u := union(cand.Service, cand, base)
	if base.Source == cand.Source {
		u.Source = cand.Source
	}
	return u, bmask | mask
}

// adds counts the instances of cand that base lacks or holds otherwise.
func adds(base, cand *registry.Update) int {
	n := 0
	for _, in := range cand.Instances {
		i, ok := slices.BinarySearchFunc(base.Instances, in.ID, func(b *registry.Instance, id string) int { return strings.Compare(b.ID, id) })
		if !ok || !base.Instances[i].Equal(in) {
			n++
		}
	}
	return n
}

// union unions the instance lists of states, the first state holding an
// ID winning; Source joins theirs with "+" (each once) and Time is the
// oldest.
func union(name string, states ...*registry.Update) *registry.Update {
	out := &registry.Update{Service: name}
	var names []string
	seen := make(map[string]bool)
	for _, d := range states {
		if out.Time.IsZero() || d.Time.Before(out.Time) {
			out.Time = d.Time
		}
		for src := range strings.SplitSeq(d.Source, "+") {
			if !seen["\x00"+src] {
				seen["\x00"+src] = true
				names = append(names, src)
			}
		}
		for _, in := range d.Instances {
			if !seen[in.ID] {
				seen[in.ID] = true
				out.Instances = append(out.Instances, in)
			}
		}
	}
	if out.Instances == nil {
		out.Instances = []*registry.Instance{}
	}
	registry.SortInstances(out.Instances)
	out.Source = strings.Join(names, "+")
	return out
}

// isDrop is dropguard.IsDrop (the rule the mirror shares, package
// internal/dropguard), with the chain's own removals as a set.
func isDrop(cur, next []*registry.Instance, share float64, own map[string]bool) bool {
	var ownFn func(string) bool
	if len(own) > 0 {
		ownFn = func(id string) bool { return own[id] }
	}
	return dropguard.IsDrop(cur, next, share, ownFn)
}

// unavailableErr is the error of a first read decide found nothing for.
func unavailableErr(name string, tiers []tierIn, snapTooOld bool) error {
	var why []string
	for _, t := range tiers {
		switch {
		case !t.up:
			why = append(why, "tier "+t.name+" is down")
		case t.failed:
			why = append(why, "tier "+t.name+" failed")
		}
	}
	if len(why) == 0 {
		why = append(why, "no tier answered")
	}
	snap := "the snapshot does not hold it"
	if snapTooOld {
		snap = "the snapshot state is too old"
	}
	return fmt.Errorf("chain: get %s: %w: %s, and %s", registry.Quote(name), registry.ErrUnavailable, strings.Join(why, ", "), snap)
}
