package chain

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regchain/regchain/registry"
)

// view is what readers of one service see. It is immutable once stored.
type view struct {
	u       *registry.Update // Instances sorted, never modified
	mask    uint64           // tiers the state came from; 0: the snapshot
	expires time.Time        // snapshot views with a max age: when they stop being served
	memo    *derivedList     // values derived from u (Derive), shared by every view of the state
}

// newView returns the view of u.
func newView(u *registry.Update, mask uint64, expires time.Time) *view {
	return &view{u: u, mask: mask, expires: expires, memo: new(derivedList)}
}

// expired reports whether the view is a snapshot state older than the max
// age at now: it is kept (it is what the chain knows) but not served.
func (v *view) expired(now time.Time) bool {
	return !v.expires.IsZero() && now.After(v.expires)
}

// tooOld is the error an expired view is answered with.
func (v *view) tooOld(c *Chain, op, name string) error {
	return fmt.Errorf("chain: %s %s: %w: no tier is up and the snapshot state is older than %v", op, registry.Quote(name), registry.ErrUnavailable, c.opts.maxAge)
}

// check turns a view into GetService's error, if any.
func (v *view) check(c *Chain, name string) error {
	if !v.expires.IsZero() && v.expired(time.Now()) {
		return v.tooOld(c, "get", name)
	}
	if len(v.u.Instances) == 0 {
		return fmt.Errorf("chain: get %s (source %s): %w", registry.Quote(name), v.u.Source, registry.ErrNotFound)
	}
	return nil
}

// publishable returns a copy of the view's Update a Feed may own: a fresh
// slice over the shared, never-modified Instances (Feed.Next deep-copies
// them for its reader).
func (v *view) publishable() *registry.Update { return shallow(v.u) }

func shallow(u *registry.Update) *registry.Update {
	cp := *u
	cp.Instances = slices.Clone(u.Instances)
	if cp.Instances == nil {
		cp.Instances = []*registry.Instance{}
	}
	return &cp
}

func bit(i int) uint64 { return 1 << uint(i) }

// lowest returns the index of the first tier of mask, n for the snapshot.
func lowest(mask uint64, n int) int {
	if mask == 0 {
		return n
	}
	return bits.TrailingZeros64(mask)
}

// service is the chain's state of one service: its view, the watchers of
// its tiers and their latest states, the tiers' authority, its chain
// watchers, its held drop and its rollback.
type service struct {
	c    *Chain
	name string
	view atomic.Pointer[view]
	used atomic.Bool // set by reads; the janitor clears it and stamps lastUsed

	mu       sync.Mutex         // guards the fields below
	watchers []*tierWatcher     // per tier; nil: not watched
	data     []*registry.Update // per tier: latest state (immutable), nil: none yet
	auth     uint64             // tiers that are authorities for the service's absence
	feeds    map[*registry.Feed]struct{}
	hold     *heldDrop
	holdGen  uint64      // bumped when a hold starts, moves or ends: stale re-reads are dropped
	holdT    *time.Timer // the next confirming re-read; nil: none
	pinned   bool        // rolled back to the last known good state
	operator bool        // the view was put there by Freeze or Rollback
	expiry   *time.Timer // fires when a served snapshot view expires; nil: none
	loading  chan struct{}
	loadErr  error
	closed   bool
	evicted  bool // closed by the janitor or the cap, not by Close: callers retry
	lastUsed time.Time
}

func newService(c *Chain, name string, now time.Time) *service {
	s := &service{
		c:        c,
		name:     name,
		watchers: make([]*tierWatcher, len(c.tiers)),
		data:     make([]*registry.Update, len(c.tiers)),
		feeds:    make(map[*registry.Feed]struct{}),
		lastUsed: now,
	}
	s.auth = c.snap.authority(name)
	return s
}

// startLocked seeds the view from the snapshot, when it holds a state fresh
// enough, and starts the watchers.
func (s *service) startLocked(now time.Time) {
	// The service is in the chain's map before it is started: the control
	// loop may have given it a live view already, which the snapshot must
	// not replace.
	if s.closed {
		return
	}
	if s.view.Load() == nil && !s.c.frozen.Load() {
		if u := s.c.snap.peek(s.name, time.Time{}); u != nil && s.c.snap.fresh(u, now) {
			s.setViewLocked(u, 0, now)
		}
	}
	s.reconcileLocked(now)
}

// reconcileLocked starts and stops tier watchers as health and the view
// require, and recomputes the view.
func (s *service) reconcileLocked(now time.Time) {
	if s.closed {
		return
	}
	s.reconcileWatchersLocked()
	s.recomputeLocked(now, false, false)
}

// wantedLocked reports whether tier i should be watched: it is up, and it
// is the current source, above it (a failback candidate), or the first tier
// that is up and not late with its first state, or a tier below whose
// state counts only if the ones above have no opinion (rule 3). Under
// Merge every tier that is up is watched.
func (s *service) wantedLocked(i int) bool {
	t := s.c.tiers[i]
	if !t.isUp() {
		return false
	}
	if s.c.opts.policy == Merge {
		return true
	}
	n := len(s.c.tiers)
	cur := n
	if v := s.view.Load(); v != nil {
		cur = lowest(v.mask, n)
	}
	if cur == n {
		return true
	}
	first := n
	for j, t := range s.c.tiers {
		if !t.isUp() || s.lateLocked(j) {
			continue
		}
		// A tier that said "empty" without authority is passed over, as
		// decide does: the next one must be watched too.
		if d := s.data[j]; d != nil && len(d.Instances) == 0 && s.auth&bit(j) == 0 {
			continue
		}
		first = j
		break
	}
	return i <= max(cur, first)
}

// lateLocked reports whether tier i's watcher has not delivered its first
// state within the call timeout: the view does not wait for it any longer.
// A tier not watched yet is not late (its watcher is about to start).
func (s *service) lateLocked(i int) bool {
	w := s.watchers[i]
	return s.data[i] == nil && w != nil && w.late
}

// onTierLate is called when w has not delivered its first state within the
// call timeout.
func (s *service) onTierLate(w *tierWatcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.watchers[w.t.idx] != w || s.data[w.t.idx] != nil {
		return
	}
	w.late = true
	s.c.log.Info("chain: tier slow to answer a watch; not waiting for it", "tier", w.t.name, "service", s.name)
	s.reconcileLocked(time.Now())
}

func (s *service) reconcileWatchersLocked() {
	if s.closed {
		return
	}
	for i, t := range s.c.tiers {
		w := s.watchers[i]
		if w != nil && (!s.wantedLocked(i) || w.epoch != t.epoch.Load()) {
			w.stop()
			s.watchers[i] = nil
			s.data[i] = nil
			w = nil
		}
		if w == nil && s.wantedLocked(i) {
			s.watchers[i] = startTierWatcher(s, t)
		}
	}
}

// inputLocked gathers decide's inputs.
func (s *service) inputLocked(now time.Time) decideIn {
	c := s.c
	n := len(c.tiers)
	cur := s.view.Load()
	in := decideIn{
		name:     s.name,
		now:      now,
		policy:   c.opts.policy,
		frozen:   c.frozen.Load(),
		pinned:   s.pinned,
		cur:      cur,
		operator: s.operator,
		hold:     s.hold,
		guard:    c.opts.guard,
		tiers:    make([]tierIn, n),
	}
	curIdx := n
	if cur != nil {
		curIdx = lowest(cur.mask, n)
		// The served state itself must not keep an instance the chain
		// deregistered.
		if f := c.hideGoneState(cur.u); f != cur.u {
			in.cur = &view{u: f, mask: cur.mask, expires: cur.expires}
		}
	}
	own := c.ownTiers(s.name)
	for i, t := range c.tiers {
		ti := &in.tiers[i]
		ti.name = t.name
		ti.up = t.isUp()
		ti.data = c.hideGoneState(s.data[i])
		ti.late = s.lateLocked(i)
		ti.auth = s.auth&bit(i) != 0 || own&bit(i) != 0
		ti.stable = t.stable(now) || (curIdx < n && t.provenAs(c.tiers[curIdx]))
	}
	var confirmed time.Time
	if curIdx < n {
		confirmed = c.tiers[curIdx].lastConfirmed()
	}
	in.snap = c.hideGoneState(c.snap.peek(s.name, confirmed))
	in.good = c.snap.good(s.name)
	in.own = func(id string) bool { return c.ownRemoved(s.name, id) }
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
// counters and logs, and the view.
func (s *service) applyLocked(in *decideIn, d decision, now time.Time) {
	c := s.c
	cur := s.view.Load()
	switch d.event {
	case evHeld:
		c.m.held.Add(1)
		c.log.Warn("chain: holding a drop until it is confirmed", "service", s.name, "from", d.srcOf(in),
			"instances", len(cur.u.Instances), "to", d.hold.count, "window", c.opts.guard.window(),
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
	if d.keep {
		if in.cur != cur {
			s.setViewLocked(in.cur.u, in.cur.mask, now)
		}
		return
	}
	s.operator = d.operator
	if d.mask == 0 && in.snap != nil && d.u == in.snap {
		c.snap.touch(s.name, d.u.Time)
	}
	if cur != nil && cur.mask == d.mask && (cur.u == d.u || cur.u.SameState(d.u)) {
		if cur.u != d.u && d.mask != 0 {
			// Same state in a new Update (the watcher's first state after the
			// load's): serve the new one quietly so the old can be freed.
			nv := newView(d.u, d.mask, cur.expires)
			carryMemo(cur, nv)
			s.view.Store(nv)
			c.snap.swap(s.name, cur.u, d.u)
		}
		return
	}
	s.setViewLocked(d.u, d.mask, now)
}

// srcOf names where a held candidate came from, for the log.
func (d decision) srcOf(in *decideIn) string {
	var names []string
	for m := d.hold.mask; m != 0; m &= m - 1 {
		names = append(names, in.tiers[lowest(m, len(in.tiers))].name)
	}
	return strings.Join(names, "+")
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

// setViewLocked stores a new view and tells the watchers.
func (s *service) setViewLocked(u *registry.Update, mask uint64, now time.Time) {
	c := s.c
	old := s.view.Load()
	var expires time.Time
	if mask == 0 && c.opts.maxAge > 0 {
		expires = u.Time.Add(c.opts.maxAge)
	}
	nv := newView(u, mask, expires)
	carryMemo(old, nv)
	s.view.Store(nv)
	s.armExpiryLocked(nv, now)
	if old != nil && old.mask != mask {
		c.m.switched(c, s.name, old, nv)
	}
	if mask != 0 && !c.frozen.Load() {
		c.snap.accept(s.name, u)
	}
	switch {
	case nv.expired(now):
		// Too old to serve: watchers keep their last state and are told
		// why; none is handed this one as if it were current.
		s.failFeedsLocked(nv.tooOld(c, "watch", s.name))
	case old == nil || old.expired(now) || !old.u.SameState(u):
		for f := range s.feeds {
			f.Publish(shallow(u))
		}
		if len(u.Instances) > 0 || (old != nil && len(old.u.Instances) > 0) {
			c.publishAll(u)
		}
	}
	s.reconcileWatchersLocked()
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

// armExpiryLocked (re)starts the timer that tells the watchers when the
// snapshot view v, served now, grows older than the max age.
func (s *service) armExpiryLocked(v *view, now time.Time) {
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	if v.expires.IsZero() || v.expired(now) {
		return
	}
	// Expired means strictly after expires: fire just past it.
	s.expiry = time.AfterFunc(v.expires.Sub(now)+time.Nanosecond, func() { s.onExpire(v) })
}

// onExpire runs when the snapshot view v may have grown too old.
func (s *service) onExpire(v *view) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.view.Load() != v {
		return
	}
	now := time.Now()
	if !v.expired(now) {
		s.armExpiryLocked(v, now)
		return
	}
	s.expiry = nil
	s.failFeedsLocked(v.tooOld(s.c, "watch", s.name))
}

// watch starts a chain watcher on the service. It returns errEvicted when
// the janitor removed the service meanwhile: the caller retries.
func (s *service) watch(ctx context.Context) (registry.Watcher, error) {
	f := newFeed(ctx, func(f *registry.Feed) {
		s.mu.Lock()
		delete(s.feeds, f)
		s.mu.Unlock()
	})
	s.mu.Lock()
	if s.closed {
		evicted := s.evicted
		s.mu.Unlock()
		// Ended outside the lock: the feed's onStop takes it.
		err := s.c.errClosed("watch " + s.name)
		if evicted {
			err = errEvicted
		}
		f.End(err)
		return nil, err
	}
	defer s.mu.Unlock()
	select {
	case <-f.Done():
		return f, nil // ctx was done already; onStop may have run
	default:
	}
	s.feeds[f] = struct{}{}
	if v := s.view.Load(); v != nil {
		if v.expired(time.Now()) {
			f.Fail(v.tooOld(s.c, "watch", s.name))
		} else {
			f.Publish(v.publishable())
		}
	} else if s.loading == nil {
		s.startLoadLocked()
	}
	return f, nil
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
	if s.closed || s.watchers[w.t.idx] != w {
		return
	}
	if s.data[w.t.idx] == nil && w.lateT != nil {
		w.lateT.Stop()
	}
	s.data[w.t.idx] = u
	if len(u.Instances) > 0 {
		s.auth |= bit(w.t.idx)
	}
	s.recomputeLocked(now, false, false)
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
		if w != nil {
			w.stop()
			s.watchers[i] = nil
		}
	}
	if s.holdT != nil {
		s.holdT.Stop()
		s.holdT = nil
	}
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	feeds := s.feeds
	s.feeds = nil
	return feeds
}
