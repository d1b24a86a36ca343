package mirror

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/regchain/regchain/internal/dropguard"
	"github.com/regchain/regchain/registry"
)

// This file holds the drop guard of the source (the package doc's rule):
// held drops, their confirming re-reads and their end.

// hold is a drop at the source the guard holds back.
type hold struct {
	base     []*registry.Instance // the state accepted before the drop
	cand     []*registry.Instance // the source's state, not mirrored yet
	since    time.Time
	reads    int       // confirming re-reads, each still a drop
	next     time.Time // when the next re-read is due
	settling bool      // ended by a state that is no drop; base's missing instances kept until the next re-read
}

// Hold is a drop at the source that the mirror holds back: the target
// keeps Mirrored instances while the source lists Source.
type Hold struct {
	Service          string
	Mirrored, Source int
	// Since is when the drop was first held; Reads how many confirming
	// re-reads it has had (it goes through after Guard.Confirmations over
	// Guard.Window).
	Since time.Time
	Reads int
}

// GuardStats counts drops: Held when first held, then Confirmed (passed
// on), Discarded (the source came back) or Released (ReleaseHold).
type GuardStats struct {
	Held, Confirmed, Discarded, Released int64
}

// ReleaseHold lets the held drop of service through at once (the
// operator's call: the instances are really gone). It reports whether there
// was one.
func (m *Mirror) ReleaseHold(service string) bool {
	m.mu.Lock()
	h := m.holds[service]
	if h != nil {
		m.acceptLocked(service, h.cand)
		m.stats.Guard.Released++
	}
	m.mu.Unlock()
	if h == nil {
		return false
	}
	m.cfg.Logger.Warn("mirror: held drop released", "origin", m.cfg.Origin, "service", service, "instances", len(h.cand))
	m.signal()
	return true
}

// offerLocked judges a new source state of service: it is accepted (and
// the service marked for reconciliation) unless it is a drop from the
// accepted state, which is held until confirmed (the package doc's rule).
// reread says the state comes from a confirming re-read of a held drop.
func (m *Mirror) offerLocked(service string, cand []*registry.Instance, reread bool, now time.Time) {
	base, known := m.src[service]
	h := m.holds[service]
	if h != nil {
		base = h.base // src may hold the settling union
	}
	if m.guard.Disabled || !known || !dropguard.IsDrop(base, cand, m.guard.Share(), nil) {
		if h != nil {
			if missing := lacking(base, cand); len(missing) > 0 && !(h.settling && reread) {
				// Providers come back one at a time after a wipe: keep the
				// ones still missing until the next re-read.
				if !h.settling {
					h.settling = true
					h.next = now.Add(m.guard.Interval())
					m.cfg.Logger.Info("mirror: held drop ending; instances the source still lacks kept until the next re-read",
						"origin", m.cfg.Origin, "service", service, "instances", len(cand), "kept", len(missing))
				}
				h.cand = cand
				m.src[service] = append(slices.Clone(cand), missing...)
				m.dirty[service] = true
				return
			}
			m.stats.Guard.Discarded++
			m.cfg.Logger.Info("mirror: held drop discarded: the source has the service back",
				"origin", m.cfg.Origin, "service", service, "instances", len(cand))
		}
		m.acceptLocked(service, cand)
		return
	}
	if h == nil {
		h = &hold{base: base, since: now, next: now.Add(m.guard.Interval())}
		m.holds[service] = h
		m.stats.Guard.Held++
		m.cfg.Logger.Warn("mirror: drop at the source held until confirmed", "origin", m.cfg.Origin, "service", service,
			"mirrored", len(base), "source", len(cand), "window", m.guard.HoldWindow())
	} else if h.settling {
		h.settling = false // a drop again: hold the whole accepted state
		m.src[service] = h.base
		m.dirty[service] = true
	}
	h.cand = cand
	if reread {
		h.reads++
		h.next = now.Add(m.guard.Interval())
	}
	if m.guard.Confirmed(h.reads, h.since, now) {
		m.stats.Guard.Confirmed++
		m.cfg.Logger.Warn("mirror: drop at the source confirmed; passing it on", "origin", m.cfg.Origin, "service", service,
			"instances", len(cand), "held_for", now.Sub(h.since))
		m.acceptLocked(service, cand)
	}
}

// lacking returns the instances of base whose ID next lacks.
func lacking(base, next []*registry.Instance) []*registry.Instance {
	have := make(map[string]bool, len(next))
	for _, in := range next {
		have[in.ID] = true
	}
	var out []*registry.Instance
	for _, in := range base {
		if !have[in.ID] {
			out = append(out, in)
		}
	}
	return out
}

// acceptLocked makes cand the state to mirror for service and ends its
// hold, if any.
func (m *Mirror) acceptLocked(service string, cand []*registry.Instance) {
	m.src[service] = cand
	delete(m.holds, service)
	m.dirty[service] = true
}

// armReread sets t to the first held drop's next re-read.
func (m *Mirror) armReread(t *time.Timer) {
	m.mu.Lock()
	var next time.Time
	for _, h := range m.holds {
		if next.IsZero() || h.next.Before(next) {
			next = h.next
		}
	}
	m.mu.Unlock()
	t.Stop()
	if !next.IsZero() {
		t.Reset(max(time.Until(next), 0))
	}
}

// rereadHeld re-reads from the source every held service whose re-read is
// due and offers the states as confirming reads. A failed read counts
// nothing: the source is marked failing and the read retried at the next
// interval.
func (m *Mirror) rereadHeld(ctx context.Context) {
	now := time.Now()
	m.mu.Lock()
	var due []string
	for s, h := range m.holds {
		if !now.Before(h.next) {
			due = append(due, s)
			h.next = now.Add(m.guard.Interval())
		}
	}
	m.mu.Unlock()
	for _, s := range due {
		var ins []*registry.Instance
		err := m.call(ctx, func(ctx context.Context) error {
			var err error
			ins, err = m.cfg.Source.GetService(ctx, s)
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				m.sourceFailed(err)
			}
			continue
		}
		m.mu.Lock()
		if m.holds[s] != nil {
			m.offerLocked(s, natives(ins), true, time.Now())
		}
		m.mu.Unlock()
	}
	m.signal()
}
