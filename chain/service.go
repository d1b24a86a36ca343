package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regchain/regchain/registry"
)

// service is the chain's state of one service: the state served, the
// watches of its tiers and their latest states, the tiers' authority, its
// chain watchers, its held drop and its rollback.
//
// A service's states enter one way: from its tier watches (a watch's first
// state is the tier's list of it, as an informer's is). Each one, and every
// other change of what decide looks at (a tier's health, a registration, a
// timer), runs recomputeLocked: the inputs are gathered, decide (pure) says
// what to serve, which tiers to watch and when to look again, and
// applyLocked carries that out.
type service struct {
	c    *Chain
	name string
	cur  atomic.Pointer[state] // what readers see; nil: nothing yet
	used atomic.Bool           // set by reads; the janitor clears it and stamps lastUsed

	mu       sync.Mutex         // guards the fields below
	watchers []*tierWatcher     // per tier; nil: not watched; a discovery watcher when covered
	cover    []*tierWatcher     // per tier: the discovery watcher that delivered the service's state last
	data     []*registry.Update // per tier: latest state (immutable), nil: none; kept when unwatched
	fresh    uint64             // tiers whose data comes from their current watcher
	failed   uint64             // tiers whose current watcher failed before its first state
	auth     uint64             // tiers that are authorities for the service's absence
	feeds    map[*registry.Feed]struct{}
	hold     *heldDrop
	holdGen  uint64      // bumped when a hold starts, moves or ends: stale re-reads are dropped
	holdT    *time.Timer // the next confirming re-read; nil: none
	pinned   bool        // rolled back to the last known good state
	operator bool        // the state was put there by Freeze or Rollback
	recheck  *time.Timer // decide's next look, nil: none
	toldOld  *state      // the expired state the watchers were last told of (rule 6)
	firstErr error       // nothing to serve and nothing on its way: what a first read returns
	ready    chan struct{}
	readyOK  bool // ready is closed: a state or firstErr is there for a first read
	closed   bool
	evicted  bool // closed by the janitor or the cap, not by Close: callers retry
	lastUsed time.Time
}

func newService(c *Chain, name string, now time.Time) *service {
	s := &service{
		c:        c,
		name:     name,
		watchers: make([]*tierWatcher, len(c.tiers)),
		cover:    make([]*tierWatcher, len(c.tiers)),
		data:     make([]*registry.Update, len(c.tiers)),
		feeds:    make(map[*registry.Feed]struct{}),
		ready:    make(chan struct{}),
		lastUsed: now,
	}
	s.auth = c.snap.authority(name)
	return s
}

// startLocked decides the service's first state (the snapshot's, when it
// holds one young enough and the tiers' first states are on their way) and
// starts its watches. The service is in the chain's map before it is
// started: the control loop may have started it already.
func (s *service) startLocked(now time.Time) {
	if s.closed || s.cur.Load() != nil {
		return
	}
	s.recomputeLocked(now, false, false)
}

// inputLocked gathers decide's inputs.
func (s *service) inputLocked(now time.Time) decideIn {
	c := s.c
	n := len(c.tiers)
	cur := s.cur.Load()
	in := decideIn{
		name:        s.name,
		now:         now,
		policy:      c.opts.policy,
		frozen:      c.frozen.Load(),
		pinned:      s.pinned,
		cur:         cur,
		operator:    s.operator,
		hold:        s.hold,
		guard:       c.opts.guard,
		tiers:       make([]tierIn, n),
		hedge:       c.opts.hedgeDelay,
		callTimeout: c.opts.callTimeout,
		maxAge:      c.opts.maxAge,
	}
	curIdx := n
	if cur != nil {
		curIdx = lowest(cur.mask, n)
		// The served state itself must not keep an instance the chain
		// deregistered.
		if f := c.hideGoneState(cur.u); f != cur.u {
			in.cur = &state{u: f, mask: cur.mask, expires: cur.expires}
		}
	}
	if h := s.hold; h != nil {
		// Nor what a hold keeps back.
		if b := c.hideGoneState(h.base); b != h.base {
			cp := *h
			cp.base = b
			in.hold = &cp
		}
	}
	own := c.ownTiers(s.name)
	for i, t := range c.tiers {
		ti := &in.tiers[i]
		ti.name = t.name
		ti.up = t.isUp()
		ti.data = c.hideGoneState(s.data[i])
		ti.fresh = s.fresh&bit(i) != 0 && ti.data != nil
		ti.failed = s.failed&bit(i) != 0
		if w := s.watchers[i]; w != nil {
			ti.watched, ti.since = true, w.since
		}
		ti.auth = s.auth&bit(i) != 0 || own&bit(i) != 0
		ti.seen = t.downConfirmed()
		ti.stable = t.stable(now) || (curIdx < n && t.provenAs(c.tiers[curIdx]))
	}
	var confirmed time.Time
	if curIdx < n {
		confirmed = c.tiers[curIdx].lastConfirmed()
	}
	in.snap = c.hideGoneState(c.snap.peek(s.name, confirmed))
	in.good = c.snap.good(s.name)
	in.ownRemoved = c.ownRemovedIDs(s.name, now)
	return in
}

// recomputeLocked asks decide what to serve and applies the answer.
// reread says a confirming re-read was just taken in; release that the
// operator lets a held drop through.
func (s *service) recomputeLocked(now time.Time, reread, release bool) {
	if s.closed {
		return
	}
	in := s.inputLocked(now)
	in.reread, in.release = reread, release
	d := decide(&in)
	s.applyLocked(&in, d, now)
}

// applyLocked carries a decision out: the hold and its re-reads, the
// counters and logs, the state, the watches and the next look.
func (s *service) applyLocked(in *decideIn, d decision, now time.Time) {
	c := s.c
	cur := s.cur.Load()
	switch d.event {
	case evHeld:
		c.m.held.Add(1)
		c.log.Warn("chain: holding a drop until it is confirmed", "service", s.name, "from", d.srcOf(in),
			"instances", len(d.hold.base.Instances), "to", d.hold.count, "window", c.opts.guard.window(),
			"confirmations", c.opts.guard.confirmations())
	case evConfirmed:
		c.m.confirmed.Add(1)
		c.log.Warn("chain: held drop confirmed", "service", s.name, "from", d.u.Source, "instances", len(d.u.Instances),
			"held_for", now.Sub(s.hold.since))
	case evDiscarded:
		c.m.discarded.Add(1)
		c.log.Info("chain: held drop not confirmed: the service is back", "service", s.name, "from", d.u.Source, "instances", len(d.u.Instances))
	case evReleased:
		c.m.released.Add(1)
		c.log.Warn("chain: held drop released by the operator", "service", s.name, "from", d.u.Source, "instances", len(d.u.Instances))
	}
	s.setHoldLocked(d.hold)
	if d.unpin {
		s.pinned = false
		c.log.Info("chain: rollback ends: a tier has the service back", "service", s.name, "from", d.u.Source)
	}
	switch {
	case d.keep:
		if in.cur != cur {
			// The served state kept an instance the chain deregistered.
			s.setStateLocked(in.cur.u, in.cur.mask, in.cur.expires, now)
		}
	case cur != nil && cur.mask == d.mask && (cur.u == d.u || cur.u.SameState(d.u)):
		s.operator = d.operator
		if d.mask == 0 && in.snap != nil && d.u == in.snap {
			c.snap.touch(s.name, d.u.Time)
		}
		if cur.u != d.u && d.mask != 0 {
			// The same state in a new Update (a tier's watch restarted):
			// serve the new one quietly so the old can be freed.
			nv := newState(d.u, d.mask, cur.expires)
			carryMemo(cur, nv)
			s.cur.Store(nv)
			c.snap.swap(s.name, cur.u, d.u)
		}
	default:
		s.operator = d.operator
		if d.mask == 0 && in.snap != nil && d.u == in.snap {
			c.snap.touch(s.name, d.u.Time)
		}
		s.setStateLocked(d.u, d.mask, d.expires, now)
	}
	if v := s.cur.Load(); v != nil && v.expired(now) && s.toldOld != v {
		// Rule 6: the served snapshot state is, or has grown, too old.
		s.toldOld = v
		s.failFeedsLocked(v.tooOld("watch", s.name))
	}
	started := s.watchLocked(d.watch)
	s.armRecheckLocked(d.recheck, started, now)
	s.setFirstErrLocked(in, d)
}

// srcOf names where a held candidate came from, for the log.
func (d decision) srcOf(in *decideIn) string {
	var names []string
	for m := d.hold.mask; m != 0; m &= m - 1 {
		names = append(names, in.tiers[lowest(m, len(in.tiers))].name)
	}
	return strings.Join(names, "+")
}

// setStateLocked stores a new state and tells the watchers.
func (s *service) setStateLocked(u *registry.Update, mask uint64, expires time.Time, now time.Time) {
	c := s.c
	old := s.cur.Load()
	nv := newState(u, mask, expires)
	carryMemo(old, nv)
	s.cur.Store(nv)
	s.markReadyLocked()
	if old != nil && old.mask != mask {
		c.m.switched(c, s.name, old, nv)
	}
	if mask != 0 && !c.frozen.Load() {
		c.snap.accept(s.name, u)
	}
	switch {
	case nv.expired(now):
		// Too old to serve: watchers keep their last state and are told
		// why (applyLocked); none is handed this one as if it were current.
	case old == nil || old.expired(now) || !old.u.SameState(u):
		for f := range s.feeds {
			f.Publish(shallow(u))
		}
		if len(u.Instances) > 0 || (old != nil && len(old.u.Instances) > 0) {
			c.publishAll(u)
		}
	}
}

// setFirstErrLocked records whether a first read can be answered: by the
// state, or by the error of a service nothing serves and nothing is on its
// way for. The watchers of such a service are told once.
func (s *service) setFirstErrLocked(in *decideIn, d decision) {
	if s.cur.Load() != nil || !d.unavailable {
		if s.firstErr != nil && s.cur.Load() == nil {
			// Something is on its way again: first reads wait for it.
			s.firstErr = nil
			if s.readyOK {
				s.ready, s.readyOK = make(chan struct{}), false
			}
		}
		s.firstErr = nil
		return
	}
	if s.firstErr != nil {
		return
	}
	snapTooOld := false
	if u := s.c.snap.peek(s.name, time.Time{}); u != nil && in.maxAge > 0 && in.now.After(u.Time.Add(in.maxAge)) {
		snapTooOld = true
	}
	s.firstErr = unavailableErr(s.name, in.tiers, snapTooOld)
	s.markReadyLocked()
	for f := range s.feeds {
		f.Fail(s.firstErr)
	}
}

func (s *service) markReadyLocked() {
	if !s.readyOK {
		close(s.ready)
		s.readyOK = true
	}
}

// watchLocked starts and stops tier watches to match want (restarting
// those of an older health epoch). A tier whose running watch-all
// (discovery) delivered the service's state is covered by it: the service
// follows it there, wanted or not, and runs no watch of its own. It
// reports whether it started one.
func (s *service) watchLocked(want uint64) (started bool) {
	c := s.c
	c.allMu.Lock()
	d := c.disc
	c.allMu.Unlock()
	for i, t := range c.tiers {
		w := s.watchers[i]
		var dw *tierWatcher
		if d != nil {
			dw = d.watcher(i)
		}
		if dw != nil && s.cover[i] == dw && dw.epoch == t.epoch.Load() {
			if w != dw {
				if w != nil && !w.shared {
					w.stop()
				}
				s.watchers[i] = dw
			}
			continue
		}
		if w != nil && (w.shared || want&bit(i) == 0 || w.epoch != t.epoch.Load()) {
			if !w.shared {
				w.stop()
			}
			s.watchers[i], w = nil, nil
			s.fresh &^= bit(i)
			s.failed &^= bit(i)
		}
		if w == nil && want&bit(i) != 0 {
			s.watchers[i] = startTierWatcher(s, t)
			started = started || s.watchers[i] != nil
		}
	}
	return started
}

// armRecheckLocked has the service decided again at at (the earlier of at
// and, when a watch just started, the moment its first state grows late).
func (s *service) armRecheckLocked(at time.Time, started bool, now time.Time) {
	if started {
		limit := s.c.opts.callTimeout
		if s.cur.Load() == nil {
			limit = s.c.opts.hedgeDelay
		}
		if late := now.Add(limit); at.IsZero() || late.Before(at) {
			at = late
		}
	}
	if s.recheck != nil {
		s.recheck.Stop()
		s.recheck = nil
	}
	if at.IsZero() {
		return
	}
	s.recheck = time.AfterFunc(at.Sub(now), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.recomputeLocked(time.Now(), false, false)
	})
}

// setHoldLocked installs the hold decide returned and schedules (or
// cancels) its confirming re-reads.
func (s *service) setHoldLocked(h *heldDrop) {
	old := s.hold
	s.hold = h
	if h == nil {
		if old != nil {
			s.holdGen++
			if s.holdT != nil {
				s.holdT.Stop()
				s.holdT = nil
			}
		}
		return
	}
	if old == nil || old.mask != h.mask || s.holdT == nil {
		if old == nil || old.mask != h.mask {
			s.holdGen++
		}
		s.armRereadLocked(s.c.opts.guard.interval())
	}
}

// failFeedsLocked reports err to the service's watchers and to the
// watch-all watchers as a transient error.
func (s *service) failFeedsLocked(err error) {
	s.c.log.Warn("chain: snapshot state too old to serve", "service", s.name, "max_age", s.c.opts.maxAge)
	for f := range s.feeds {
		f.Fail(err)
	}
	s.c.failAll(err)
}

// onTierUpdate takes a state from one of the service's tier watchers.
func (s *service) onTierUpdate(w *tierWatcher, u *registry.Update) {
	now := time.Now()
	u.Source = w.t.name
	if u.Time.IsZero() {
		u.Time = now
	}
	u.Instances = s.c.hideGone(s.name, tidy(u.Instances))
	s.c.healOwn(w.t, s.name, u.Instances)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := w.t.idx
	if w.shared && !s.closed && s.watchers[i] != w {
		// The tier's watch-all now covers the service: its own watch of
		// the tier, if any, is superseded.
		if old := s.watchers[i]; old != nil && !old.shared {
			old.stop()
		}
		s.watchers[i] = w
		s.failed &^= bit(i)
	}
	if w.shared {
		s.cover[i] = w
	}
	if s.closed || s.watchers[i] != w {
		return
	}
	if s.fresh&bit(i) == 0 {
		// The watch's first state: the tier's read of the service.
		w.t.lat.observe(latRead, w.since, nil)
	}
	s.data[i] = u
	s.fresh |= bit(i)
	s.failed &^= bit(i)
	if len(u.Instances) > 0 {
		s.auth |= bit(i)
	}
	s.recomputeLocked(now, false, false)
}

// onTierError takes a failure of one of the service's tier watchers: one
// before its first state means that state is not coming soon.
func (s *service) onTierError(w *tierWatcher, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := w.t.idx
	if s.closed || s.watchers[i] != w || s.fresh&bit(i) != 0 || s.failed&bit(i) != 0 {
		return
	}
	w.t.lat.observe(latRead, w.since, err)
	s.failed |= bit(i)
	s.recomputeLocked(time.Now(), false, false)
}

// close ends the service's watchers (with err) and stops its tier
// watchers and timers.
func (s *service) close(err error) {
	s.mu.Lock()
	feeds := s.closeLocked()
	s.mu.Unlock()
	for f := range feeds {
		f.End(err)
	}
}

func (s *service) closeLocked() map[*registry.Feed]struct{} {
	s.closed = true
	for i, w := range s.watchers {
		if w != nil && !w.shared {
			w.stop()
		}
		s.watchers[i] = nil
	}
	for _, t := range []**time.Timer{&s.holdT, &s.recheck} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
	s.markReadyLocked()
	feeds := s.feeds
	s.feeds = nil
	return feeds
}

// publishAll hands u to every watch-all feed. Called with the service's
// lock held, which orders the publishes of one service.
func (c *Chain) publishAll(u *registry.Update) {
	c.allMu.Lock()
	defer c.allMu.Unlock()
	for f := range c.allFeeds {
		f.Publish(shallow(u))
	}
}

// failAll reports err to every watch-all feed as a transient error. Called
// with the service's lock held, like publishAll.
func (c *Chain) failAll(err error) {
	c.allMu.Lock()
	defer c.allMu.Unlock()
	for f := range c.allFeeds {
		f.Fail(err)
	}
}

func startTierWatcher(s *service, t *tier) *tierWatcher {
	return spawnWatcher(s.c, t, s.name, s.onTierUpdate, s.onTierError)
}

// armRereadLocked schedules the next confirming re-read of the held drop
// in d.
func (s *service) armRereadLocked(d time.Duration) {
	if s.holdT != nil {
		s.holdT.Stop()
	}
	gen := s.holdGen
	s.holdT = time.AfterFunc(d, func() {
		s.c.spawn(func() { s.reread(gen) })
	})
}

// reread re-reads the tiers a held drop came from and hands the states to
// decide as a confirming read. A tier whose watcher delivered a state
// while the re-read was in flight keeps that state: it may be newer than
// the re-read's, and nothing would correct an older one.
func (s *service) reread(gen uint64) {
	c := s.c
	s.mu.Lock()
	if s.closed || s.hold == nil || s.holdGen != gen {
		s.mu.Unlock()
		return
	}
	mask := s.hold.mask
	before := slices.Clone(s.data)
	s.mu.Unlock()

	got := make([]*registry.Update, len(c.tiers))
	var failed error
	for m := mask; m != 0; m &= m - 1 {
		i := lowest(m, len(c.tiers))
		u, err := c.readTier(c.ctx, c.tiers[i], s.name)
		if err != nil {
			failed = err
			break
		}
		got[i] = u
	}
	if c.ctx.Err() != nil {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.hold == nil || s.holdGen != gen {
		return
	}
	if failed != nil {
		c.log.Info("chain: re-read of a held drop failed; retrying", "service", s.name, "error", failed)
		s.armRereadLocked(c.opts.guard.interval())
		return
	}
	for i, u := range got {
		if u != nil && s.watchers[i] != nil && (s.data[i] == nil || s.data[i] == before[i]) {
			s.data[i] = u
			if len(u.Instances) > 0 {
				s.auth |= bit(i)
			}
		}
	}
	s.holdT = nil
	s.recomputeLocked(time.Now(), true, false)
	if s.hold != nil && s.holdGen == gen && s.holdT == nil {
		s.armRereadLocked(c.opts.guard.interval())
	}
}

// readTier reads one service from one tier for the chain's own account (a
// first read or a re-read), bounded by the call timeout. ErrNotFound is an
// empty state. A read that only ran out of time says nothing about the
// tier's health (a slow answer is not a failure); an ErrUnavailable does.
func (c *Chain) readTier(ctx context.Context, t *tier, name string) (*registry.Update, error) {
	cctx, cancel := context.WithTimeoutCause(ctx, c.opts.callTimeout, errCallTimeout)
	defer cancel()
	start := time.Now()
	got, err := t.reg.GetService(cctx, name)
	t.lat.observe(latRead, start, ignoreNotFound(err))
	switch {
	case err == nil:
		t.report(nil, false)
	case errors.Is(err, registry.ErrNotFound):
		t.report(nil, false)
		got, err = nil, nil
	case ctx.Err() != nil:
		return nil, err // the caller gave up: not the tier's fault
	case context.Cause(cctx) == errCallTimeout:
		return nil, fmt.Errorf("%w: %w: %w", registry.ErrUnavailable, errCallTimeout, err)
	default:
		t.report(err, false)
		return nil, err
	}
	return &registry.Update{Service: name, Instances: c.hideGone(name, tidy(got)), Source: t.name, Time: time.Now()}, nil
}
