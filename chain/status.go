package chain

import (
	"slices"

	"strings"
	"time"

	"github.com/regchain/regchain/registry"
)

// Status is a point-in-time report of the chain, for readiness probes and
// operators.
type Status struct {
	// Ready is true when at least one tier is up, or the chain is frozen:
	// the chain serves live (or deliberately frozen) states. A chain that
	// serves from the snapshot because every tier is down is not Ready,
	// though it still answers.
	Ready bool
	// Frozen is true while Freeze(true) is in effect.
	Frozen bool
	// Tiers, in chain order.
	Tiers []TierStatus
	// Services the chain has a view of, sorted by name.
	Services []ServiceStatus
	// PendingRegistrations counts the registrations and deregistrations not
	// yet held by every writable tier.
	PendingRegistrations int
	// Registrations is the state of each of the chain's own registrations
	// (Registrations()).
	Registrations []registry.RegistrationState
	// Snapshot describes the last resort.
	Snapshot SnapshotStatus
	// Recent lists the last source switches (failovers and failbacks),
	// oldest first, at most 32.
	Recent []Switch
	// Guard counts held drops since the chain started.
	Guard GuardStatus
	// Degradation is the chain's degradation level (level.go).
	Degradation Degradation
}

// GuardStatus counts what the empty-push protection did.
type GuardStatus struct {
	// Held counts drops held; Confirmed those confirmed and served;
	// Discarded those never served (the service came back); Released
	// those let through by ReleaseHold.
	Held, Confirmed, Discarded, Released int64
	// Rollbacks counts Rollback calls.
	Rollbacks int64
}

// TierStatus is the health of one tier.
type TierStatus struct {
	// Name and ReadOnly are the tier's, as given to New.
	Name     string
	ReadOnly bool
	// Up is true while the tier's circuit is closed.
	Up bool
	// Stable is true when Up and up for at least the failback hysteresis
	// (or since the chain started).
	Stable bool
	// Since is when Up last changed (zero: not since the chain started).
	Since time.Time
	// Failures counts consecutive failures; LastError is the last one.
	Failures  int
	LastError string
	// LastOK is the last time the tier answered.
	LastOK time.Time
	// Pending counts the registrations and deregistrations it lacks.
	Pending int
}

// ServiceStatus is the view of one service.
type ServiceStatus struct {
	// Name is the service's name.
	Name string
	// Source is the tier (tiers joined by "+" under Merge, or "snapshot")
	// the view comes from.
	Source string
	// Instances is the number of instances served.
	Instances int
	// Time is when the source last confirmed the state (for tiers that are
	// up, when they last answered, since their watches keep the state
	// current); Age is now - Time.
	Time time.Time
	Age  time.Duration
	// Stale is true when the state is served from the snapshot or from a
	// tier that is down.
	Stale bool
	// TooOld is true when the only state the chain has is a snapshot state
	// older than WithSnapshotMaxAge: it is kept but not served (reads fail
	// with registry.ErrUnavailable), so Instances is 0 and the snapshot
	// does not count it as serving.
	TooOld bool
	// Held is true while the empty-push protection holds a drop back:
	// HeldInstances is what the tiers say now, HeldSince when the drop was
	// first held, HeldReads how many confirming re-reads it has had (it
	// goes through after Guard.Confirmations over Guard.Window).
	Held          bool
	HeldInstances int
	HeldSince     time.Time
	HeldReads     int
	// RolledBack is true while Rollback is in effect.
	RolledBack bool
	// LastGood describes the last known good state (zero Instances: none).
	LastGood LastGoodStatus
}

// LastGoodStatus describes a service's last known good state: the last
// non-empty state the chain accepted, what Freeze and Rollback serve.
type LastGoodStatus struct {
	Instances int
	Source    string // the tier it came from
	Time      time.Time
}

// SnapshotStatus describes the snapshot.
type SnapshotStatus struct {
	// Configured is true when a SnapshotStore was given.
	Configured bool
	// Services is the number of services it holds.
	Services int
	// Serving counts the services currently served from it; ServedAge is
	// the age of the oldest of them.
	Serving   int
	ServedAge time.Duration
	// LastSave is when it was last saved; LastError the last save or load
	// error, "" after a success.
	LastSave  time.Time
	LastError string
	// Commits and Errors count saves.
	Commits, Errors int64
	// Age is now - LastSave (zero when never saved).
	Age time.Duration
}

// Status returns the chain's current status.
func (c *Chain) Status() Status {
	now := time.Now()
	st := Status{Frozen: c.frozen.Load()}
	st.Ready = st.Frozen
	for _, t := range c.tiers {
		t.mu.Lock()
		ts := TierStatus{
			Name:     t.name,
			ReadOnly: t.readOnly,
			Up:       t.up.Load(),
			Since:    t.since,
			Failures: t.consecutive,
			LastOK:   t.lastOK,
		}
		if t.lastErr != nil {
			ts.LastError = t.lastErr.Error()
		}
		ts.Stable = ts.Up && (t.upSince.IsZero() || now.Sub(t.upSince) >= c.opts.failbackAfter)
		t.mu.Unlock()
		if !t.readOnly {
			ts.Pending = c.pendingCount(t)
		}
		st.Ready = st.Ready || ts.Up
		st.Tiers = append(st.Tiers, ts)
	}
	for _, s := range c.serviceList() {
		v := s.cur.Load()
		if v == nil {
			continue
		}
		ss := ServiceStatus{Name: s.name, Source: v.u.Source, Instances: len(v.u.Instances), Time: v.u.Time, Stale: c.stale(v)}
		if v.expired(now) {
			ss.TooOld, ss.Instances = true, 0
		}
		s.mu.Lock()
		if h := s.hold; h != nil {
			ss.Held, ss.HeldInstances, ss.HeldSince, ss.HeldReads = true, h.count, h.since, h.reads
		}
		ss.RolledBack = s.pinned
		s.mu.Unlock()
		if n, src, at, ok := c.snap.goodInfo(s.name); ok {
			ss.LastGood = LastGoodStatus{Instances: n, Source: src, Time: at}
		}
		if at := c.confirmedAt(v); at.After(ss.Time) {
			ss.Time = at
		}
		ss.Age = now.Sub(ss.Time)
		if v.mask == 0 && !ss.TooOld {
			st.Snapshot.Serving++
			st.Snapshot.ServedAge = max(st.Snapshot.ServedAge, ss.Age)
		}
		st.Services = append(st.Services, ss)
	}
	slices.SortFunc(st.Services, func(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	st.PendingRegistrations = c.pendingCount(nil)
	sc := c.snap.status()
	entries, lastSave, lastErr, commits, failures := sc.entries, sc.lastSave, sc.lastErr, sc.commits, sc.failures
	st.Snapshot.Configured = c.snap.store != nil
	st.Snapshot.Services = entries
	st.Snapshot.LastSave = lastSave
	if lastErr != nil {
		st.Snapshot.LastError = lastErr.Error()
	}
	st.Snapshot.Commits, st.Snapshot.Errors = commits, failures
	if !lastSave.IsZero() {
		st.Snapshot.Age = now.Sub(lastSave)
	}
	st.Registrations = c.Registrations()
	st.Recent = c.m.recentSwitches()
	st.Guard = GuardStatus{
		Held: c.m.held.Load(), Confirmed: c.m.confirmed.Load(), Discarded: c.m.discarded.Load(),
		Released: c.m.released.Load(), Rollbacks: c.m.rollbacks.Load(),
	}
	st.Degradation = c.Degradation()
	return st
}

// confirmedAt returns when the tiers a live view comes from last answered,
// zero if one of them is down or the view is the snapshot's: a state a
// tier's watch keeps delivering is confirmed as long as the tier answers,
// not only when it last changed.
func (c *Chain) confirmedAt(v *state) time.Time {
	var at time.Time
	for m := v.mask; m != 0; m &= m - 1 {
		t := c.tiers[lowest(m, len(c.tiers))]
		if !t.isUp() {
			return time.Time{}
		}
		if ok := t.lastConfirmed(); at.IsZero() || ok.Before(at) {
			at = ok
		}
	}
	return at
}
