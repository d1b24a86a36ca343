package chain

import (
	"strings"
	"time"

	"github.com/regchain/regchain/internal/dropguard"
	"github.com/regchain/regchain/registry"
)

// This file holds the rules of what a service's readers see (the package
// documentation, "What readers see", says them in prose). decide is pure:
// no goroutines, timers, locks or I/O; the service gathers its inputs and
// applies its decision.

// tierIn is what decide knows of one tier for one service.
type tierIn struct {
	name   string
	up     bool             // circuit closed
	late   bool             // up, but its watch has not answered within the call timeout
	stable bool             // may become the source again (hysteresis passed, or proven)
	auth   bool             // an authority for the service's absence (rule 3)
	data   *registry.Update // its latest state, nil: none yet
}

// heldDrop is a drop the guard keeps back (rule 5). It is a value: decide
// returns a new one rather than modify its input.
type heldDrop struct {
	mask  uint64    // tiers the held candidate came from
	count int       // instances the held candidate has
	since time.Time // when the drop was first held
	reads int       // confirming re-reads so far, each still a drop
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
	cur     *view            // served now; nil: nothing yet
	snap    *registry.Update // the snapshot's serving state (Source "snapshot"); nil: none
	good    *registry.Update // the last known good state (Source "snapshot"); nil: none
	hold    *heldDrop        // nil: no held drop
	reread  bool             // a confirming re-read of hold's tiers has just been taken in
	release bool             // the operator released the hold: let the candidate through
	guard   Guard
	// own reports whether the chain itself deregistered the instance ID:
	// its removal is not part of a drop.
	own func(id string) bool
	// operator says cur was put there by Freeze or Rollback: the guard then
	// judges a candidate against the last state accepted from a tier (snap)
	// rather than against the operator's choice.
	operator bool
}

// decision is decide's answer.
type decision struct {
	keep     bool             // leave the served state as it is
	u        *registry.Update // the state to serve, unless keep
	mask     uint64           // tiers u came from; 0: the snapshot
	hold     *heldDrop        // the held drop after the decision; nil: none
	event    guardEvent
	unpin    bool // the rollback ends: a tier has the service back
	operator bool // u is served by Freeze or Rollback
}

// decide applies the rules to in.
func decide(in *decideIn) decision {
	// Rule 1: frozen.
	if in.frozen {
		switch {
		case in.good != nil:
			return decision{u: in.good, operator: true}
		case in.snap != nil:
			return decision{u: in.snap, operator: true}
		}
		return decision{u: &registry.Update{Service: in.name, Instances: []*registry.Instance{}, Source: SnapshotSource, Time: in.now}, operator: true}
	}
	cand, mask, ok := candidate(in)
	// Rule 2: rolled back, until a tier has the service back.
	if in.pinned && in.good != nil {
		if !ok || mask == 0 || isDrop(in.good.Instances, cand.Instances, in.guard.share(), in.own) {
			return decision{u: in.good, operator: true}
		}
		return decision{u: cand, mask: mask, unpin: true}
	}
	if !ok {
		return decision{keep: true, hold: in.hold}
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
	base := cur
	if cur != nil && in.operator {
		base = nil
		if in.snap != nil {
			base = &view{u: in.snap}
		}
	}
	if in.guard.Disabled || base == nil || mask == 0 || !isDrop(base.u.Instances, cand.Instances, in.guard.share(), in.own) {
		d := decision{u: cand, mask: mask}
		if in.hold != nil {
			d.event = evDiscarded
		}
		return d
	}
	if in.release {
		return decision{u: cand, mask: mask, event: evReleased}
	}
	h := heldDrop{mask: mask, count: len(cand.Instances), since: in.now}
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
	return decision{keep: true, hold: &h, event: ev}
}

// candidate picks the state rules 3 and 4 say the tiers offer. ok is false
// when the served state should stay (nothing anywhere, or the next
// source's first state is on its way).
func candidate(in *decideIn) (u *registry.Update, mask uint64, ok bool) {
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
		pending := false
		for i, t := range in.tiers {
			if !t.up {
				continue
			}
			if t.data == nil {
				pending = pending || !t.late
				continue
			}
			if curMask != 0 && curMask&bit(i) == 0 && !t.stable {
				continue // hysteresis before a tier joins
			}
			if len(t.data.Instances) == 0 && !t.auth {
				if opinionless == nil {
					opinionless, omask = t.data, bit(i)
				}
				continue
			}
			parts = append(parts, i)
			mask |= bit(i)
		}
		switch {
		case pending && curMask == 0:
			// The first view, and the first after the snapshot's, waits for
			// every tier that is up (and not late).
			return nil, 0, false
		case len(parts) == 1:
			return in.tiers[parts[0]].data, mask, true
		case len(parts) > 1:
			return mergeStates(in.name, in.tiers, parts), mask, true
		case pending:
			return nil, 0, false
		}
	} else {
		for i, t := range in.tiers {
			if !t.up {
				continue
			}
			d := t.data
			if d == nil {
				if i < curIdx && curIdx < n {
					continue // a failback candidate whose state is on its way
				}
				if t.late {
					continue // up, but its watch does not answer: do not wait
				}
				// Keep serving until the new source answers; with no view
				// yet or the snapshot's, wait for the first tier rather than
				// take a lower one first (and switch again when it answers).
				return nil, 0, false
			}
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

// mergeStates unions the sorted instance lists of tiers[parts], the first
// part winning on equal IDs.
func mergeStates(name string, tiers []tierIn, parts []int) *registry.Update {
	names := make([]string, 0, len(parts))
	out := &registry.Update{Service: name}
	seen := make(map[string]bool)
	for _, i := range parts {
		d := tiers[i].data
		names = append(names, tiers[i].name)
		if out.Time.IsZero() || d.Time.Before(out.Time) {
			out.Time = d.Time
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

// isDrop is dropguard.IsDrop: the rule the mirror shares (package
// internal/dropguard).
func isDrop(cur, next []*registry.Instance, share float64, own func(string) bool) bool {
	return dropguard.IsDrop(cur, next, share, own)
}
