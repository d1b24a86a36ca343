package chain

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// view is what readers of one service see. It is immutable once stored.
type view struct {
	u       *registry.Update // Instances sorted, never modified
	mask    uint64           // tiers the state came from; 0: the snapshot
	expires time.Time        // snapshot views with a max age: when they stop being served
}

// expired reports whether the view is a snapshot state older than the max
// age at now: it is kept (it is what the chain knows) but not served.
func (v *view) expired(now time.Time) bool {
	return !v.expires.IsZero() && now.After(v.expires)
}

// tooOld is the error an expired view is answered with.
func (v *view) tooOld(c *Chain, op, name string) error {
	return fmt.Errorf("chain: %s %q: %w: no tier is up and the snapshot state is older than %v", op, name, registry.ErrUnavailable, c.opts.maxAge)
}

// check turns a view into GetService's error, if any.
func (v *view) check(c *Chain, name string) error {
	if v.expired(time.Now()) {
		return v.tooOld(c, "get", name)
	}
	if len(v.u.Instances) == 0 {
		return fmt.Errorf("chain: get %q (source %s): %w", name, v.u.Source, registry.ErrNotFound)
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
// its tiers and their latest states, its chain watchers and its held drop.
type service struct {
	c    *Chain
	name string
	view atomic.Pointer[view]

	mu       sync.Mutex         // guards the fields below
	watchers []*tierWatcher     // per tier; nil: not watched
	data     []*registry.Update // per tier: latest state (immutable), nil: none yet
	feeds    map[*registry.Feed]struct{}
	hold     *hold
	expiry   *time.Timer   // fires when a served snapshot view expires; nil: none
	loading  chan struct{} // closed when the running load ends; nil: none running
	loadErr  error
	closed   bool
}

func newService(c *Chain, name string) *service {
	return &service{
		c:        c,
		name:     name,
		watchers: make([]*tierWatcher, len(c.tiers)),
		data:     make([]*registry.Update, len(c.tiers)),
		feeds:    make(map[*registry.Feed]struct{}),
	}
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
	if s.view.Load() == nil {
		if u := s.c.snap.serve(s.name, time.Time{}); u != nil && s.c.snap.fresh(u, now) {
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
	s.recomputeLocked(now)
}

// wantedLocked reports whether tier i should be watched: it is up, and it
// is the current source, above it (a failback candidate), or the first tier
// that is up and not late with its first state. Under Merge every tier that
// is up is watched.
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
		if t.isUp() && !s.lateLocked(j) {
			first = j
			break
		}
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

// candidateLocked computes what the view should be now. ok is false when
// the current view should stay as it is (no data anywhere, or the next
// source's first state is still on its way).
func (s *service) candidateLocked(now time.Time) (u *registry.Update, mask uint64, ok bool) {
	c := s.c
	n := len(c.tiers)
	cur := s.view.Load()
	if c.frozen.Load() {
		if u := c.snap.serve(s.name, time.Time{}); u != nil {
			return u, 0, true
		}
		return &registry.Update{Service: s.name, Instances: []*registry.Instance{}, Source: SnapshotSource, Time: now}, 0, true
	}
	curIdx, curMask := n, uint64(0)
	if cur != nil {
		curMask = cur.mask
		curIdx = lowest(curMask, n)
	}
	if c.opts.policy == Merge {
		u, mask, pending := s.mergeLocked(now, curMask)
		if pending && curMask == 0 {
			// The first view, and the first after the snapshot's, waits for
			// every tier that is up (and not late), rather than switch to a
			// part of the union and then to the whole.
			return nil, 0, false
		}
		if mask != 0 {
			return u, mask, true
		}
		if pending {
			return nil, 0, false
		}
	} else {
		for i, t := range c.tiers {
			if !t.isUp() {
				continue
			}
			d := s.data[i]
			if d == nil {
				if i < curIdx && curIdx < n {
					continue // a failback candidate whose state is on its way
				}
				if s.lateLocked(i) {
					continue // up, but its watch does not answer: do not wait
				}
				// Keep serving until the new source answers; with no view yet
				// or the snapshot's, wait for the first tier rather than take
				// a lower one first (and switch again when it answers).
				return nil, 0, false
			}
			if i < curIdx && curIdx < n && !t.stable(now) && !t.provenAs(c.tiers[curIdx]) {
				continue // hysteresis
			}
			return d, bit(i), true
		}
	}
	// No tier can serve: fall back to the snapshot, confirmed as of when the
	// current source was last seen healthy.
	var confirmed time.Time
	if curIdx < n {
		confirmed = c.tiers[curIdx].lastConfirmed()
	}
	if u := c.snap.serve(s.name, confirmed); u != nil {
		return u, 0, true
	}
	return nil, 0, false
}

// mergeLocked builds the union of the tiers that are up. pending reports a
// tier that is up but whose state is not there yet (and not late).
func (s *service) mergeLocked(now time.Time, curMask uint64) (u *registry.Update, mask uint64, pending bool) {
	var parts []int
	for i, t := range s.c.tiers {
		if !t.isUp() {
			continue
		}
		if s.data[i] == nil {
			pending = pending || !s.lateLocked(i)
			continue
		}
		if curMask != 0 && curMask&bit(i) == 0 && !t.stable(now) {
			continue // hysteresis before a tier joins
		}
		parts = append(parts, i)
		mask |= bit(i)
	}
	switch len(parts) {
	case 0:
		return nil, 0, pending
	case 1:
		return s.data[parts[0]], mask, pending
	}
	return mergeStates(s.name, s.c.tiers, s.data, parts), mask, pending
}

// mergeStates unions the sorted instance lists of data[parts], the first
// part winning on equal IDs.
func mergeStates(name string, tiers []*tier, data []*registry.Update, parts []int) *registry.Update {
	names := make([]string, 0, len(parts))
	out := &registry.Update{Service: name}
	seen := make(map[string]bool)
	for _, i := range parts {
		d := data[i]
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

// recomputeLocked moves the view to the current candidate, through the
// empty-push guard.
func (s *service) recomputeLocked(now time.Time) {
	if s.closed {
		return
	}
	cand, mask, ok := s.candidateLocked(now)
	if !ok {
		return
	}
	cur := s.view.Load()
	if cur != nil && cur.mask == mask && (cur.u == cand || cur.u.SameState(cand)) {
		if s.hold != nil {
			s.dropHoldLocked(false)
		}
		if cur.u != cand && mask != 0 {
			// Same state in a new Update (the watcher's first state after the
			// load's): serve the new one quietly so the old can be freed.
			s.view.Store(&view{u: cand, mask: mask, expires: cur.expires})
			s.c.snap.swap(s.name, cur.u, cand)
		}
		return
	}
	if s.guardLocked(cur, cand, mask, now) {
		return
	}
	s.setViewLocked(cand, mask, now)
}

// setViewLocked stores a new view and tells the watchers.
func (s *service) setViewLocked(u *registry.Update, mask uint64, now time.Time) {
	c := s.c
	old := s.view.Load()
	nv := &view{u: u, mask: mask}
	if mask == 0 && c.opts.maxAge > 0 {
		nv.expires = u.Time.Add(c.opts.maxAge)
	}
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

// watch starts a chain watcher on the service.
func (s *service) watch(ctx context.Context) (registry.Watcher, error) {
	f := newFeed(ctx, func(f *registry.Feed) {
		s.mu.Lock()
		delete(s.feeds, f)
		s.mu.Unlock()
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		// Ended outside the lock: the feed's onStop takes it.
		err := s.c.errClosed("watch " + s.name)
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

// await returns the view, loading it from the tiers if there is none yet.
func (s *service) await(ctx context.Context) (*view, error) {
	s.mu.Lock()
	if v := s.view.Load(); v != nil {
		s.mu.Unlock()
		return v, nil
	}
	if s.closed {
		s.mu.Unlock()
		return nil, s.c.errClosed("get " + s.name)
	}
	ch := s.loading
	if ch == nil {
		ch = s.startLoadLocked()
		if ch == nil {
			s.mu.Unlock()
			return nil, s.c.errClosed("get " + s.name)
		}
	}
	s.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("chain: get %q: %w", s.name, ctx.Err())
	}
	if v := s.view.Load(); v != nil {
		return v, nil
	}
	s.mu.Lock()
	err := s.loadErr
	s.mu.Unlock()
	if err == nil {
		err = s.c.errClosed("get " + s.name)
	}
	return nil, err
}

func (s *service) startLoadLocked() chan struct{} {
	ch := make(chan struct{})
	s.loading = ch
	if !s.c.spawn(func() { s.load(ch) }) {
		s.loading = nil
		return nil
	}
	return ch
}

// load reads the service from the first tier that answers, or the snapshot.
func (s *service) load(done chan struct{}) {
	err := s.loadTiers()
	s.mu.Lock()
	s.loadErr = err
	s.loading = nil
	var fail []*registry.Feed
	if s.view.Load() == nil && err != nil {
		for f := range s.feeds {
			fail = append(fail, f)
		}
	}
	s.mu.Unlock()
	for _, f := range fail {
		f.Fail(err)
	}
	close(done)
}

func (s *service) loadTiers() error {
	c := s.c
	var (
		errs  []error
		data  = make([]*registry.Update, len(c.tiers))
		parts []int
	)
	for _, t := range c.tiers {
		if s.view.Load() != nil {
			return nil // a watcher was faster
		}
		if !t.isUp() {
			errs = append(errs, fmt.Errorf("tier %s is down", t.name))
			continue
		}
		var got []*registry.Instance
		err := c.call(c.ctx, t, func(ctx context.Context) error {
			var err error
			got, err = t.reg.GetService(ctx, s.name)
			return err
		})
		switch {
		case err == nil:
		case errors.Is(err, registry.ErrNotFound):
			got = []*registry.Instance{}
		case c.ctx.Err() != nil:
			return c.errClosed("get " + s.name)
		case failover(err):
			errs = append(errs, fmt.Errorf("tier %s: %w", t.name, err))
			continue
		default:
			return fmt.Errorf("chain: get %q: tier %s: %w", s.name, t.name, err)
		}
		got = tidy(got)
		data[t.idx] = &registry.Update{Service: s.name, Instances: got, Source: t.name, Time: time.Now()}
		parts = append(parts, t.idx)
		if c.opts.policy == FirstHealthy {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.view.Load() != nil {
		return nil
	}
	now := time.Now()
	if len(parts) > 0 {
		var mask uint64
		for _, i := range parts {
			mask |= bit(i)
			if s.watchers[i] == nil {
				continue
			}
			if s.data[i] == nil {
				s.data[i] = data[i]
				continue
			}
			// The tier's watcher answered while the read was in flight. Its
			// state may be newer than the read's, and nothing would correct
			// the read's then; if the read's is the newer, the watcher
			// delivers it next.
			data[i] = s.data[i]
		}
		u := data[parts[0]]
		if len(parts) > 1 {
			u = mergeStates(s.name, c.tiers, data, parts)
		}
		s.setViewLocked(u, mask, now)
		return nil
	}
	if u := c.snap.serve(s.name, time.Time{}); u != nil {
		s.setViewLocked(u, 0, now)
		return nil
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no tier"))
	}
	return fmt.Errorf("chain: get %q: %w: every tier failed and the snapshot does not hold it: %w", s.name, registry.ErrUnavailable, errors.Join(errs...))
}

// onTierUpdate takes a state from one of the service's tier watchers.
func (s *service) onTierUpdate(w *tierWatcher, u *registry.Update) {
	now := time.Now()
	u.Source = w.t.name
	if u.Time.IsZero() {
		u.Time = now
	}
	u.Instances = tidy(u.Instances)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.watchers[w.t.idx] != w {
		return
	}
	if s.data[w.t.idx] == nil && w.lateT != nil {
		w.lateT.Stop()
	}
	s.data[w.t.idx] = u
	s.recomputeLocked(now)
}

// close ends the service's watchers (with err) and stops its tier watchers.
func (s *service) close(err error) {
	s.mu.Lock()
	s.closed = true
	for i, w := range s.watchers {
		if w != nil {
			w.stop()
			s.watchers[i] = nil
		}
	}
	if s.hold != nil {
		s.hold.timer.Stop()
		s.hold = nil
	}
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	feeds := s.feeds
	s.feeds = nil
	s.mu.Unlock()
	for f := range feeds {
		f.End(err)
	}
}

// tierWatcher runs one tier's Watch of one service (or of every service,
// for discovery) and hands its states over. The tier's Watch gets the
// watcher's context, so that stop (or Close) also ends a Watch call still in
// flight; a watcher it returned is ended with Stop as well.
type tierWatcher struct {
	t       *tier
	name    string
	epoch   int64
	ctx     context.Context // done when the watcher is stopped
	cancel  context.CancelFunc
	deliver func(w *tierWatcher, u *registry.Update)
	lateT   *time.Timer // a service's: fires onTierLate; nil for discovery
	late    bool        // guarded by the service's lock
}

func startTierWatcher(s *service, t *tier) *tierWatcher {
	w := spawnWatcher(s.c, t, s.name, s.onTierUpdate)
	if w != nil {
		w.lateT = time.AfterFunc(s.c.opts.callTimeout, func() { s.onTierLate(w) })
	}
	return w
}

func spawnWatcher(c *Chain, t *tier, name string, deliver func(*tierWatcher, *registry.Update)) *tierWatcher {
	ctx, cancel := context.WithCancel(c.ctx)
	w := &tierWatcher{t: t, name: name, epoch: t.epoch.Load(), ctx: ctx, cancel: cancel, deliver: deliver}
	if !c.spawn(w.run) {
		cancel()
		return nil
	}
	return w
}

// stop ends the watcher; it does not wait for its goroutine.
func (w *tierWatcher) stop() {
	w.cancel()
	if w.lateT != nil {
		w.lateT.Stop()
	}
}

// wait sleeps d unless the watcher is stopped first.
func (w *tierWatcher) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-w.ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (w *tierWatcher) run() {
	defer w.cancel()
	b := backoff.Backoff{Base: 50 * time.Millisecond, Max: 5 * time.Second}
	for w.ctx.Err() == nil {
		rw, err := w.t.reg.Watch(w.ctx, w.name)
		if err != nil {
			if w.ctx.Err() != nil {
				return
			}
			w.t.report(err, false)
			w.t.c.log.Debug("chain: tier watch failed", "tier", w.t.name, "service", w.name, "error", err)
			if !w.wait(b.Next()) {
				return
			}
			continue
		}
		stopAfter := context.AfterFunc(w.ctx, func() { rw.Stop() })
		w.next(rw, &b)
		if stopAfter() {
			rw.Stop()
		}
		if w.ctx.Err() == nil && !w.wait(b.Next()) {
			return
		}
	}
}

// next reads rw until it ends or the watcher is stopped.
func (w *tierWatcher) next(rw registry.Watcher, b *backoff.Backoff) {
	errs := 0
	for {
		u, err := rw.Next()
		if w.ctx.Err() != nil {
			return
		}
		if err != nil {
			w.t.report(err, false)
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				w.t.c.log.Debug("chain: tier watcher ended", "tier", w.t.name, "service", w.name, "error", err)
				return
			}
			w.t.c.log.Debug("chain: tier watch error", "tier", w.t.name, "service", w.name, "error", err)
			// Feed-based watchers report an error once and then block; guard
			// against one that keeps failing at once.
			if errs++; errs > 1 && !w.wait(b.Next()) {
				return
			}
			continue
		}
		errs = 0
		b.Reset()
		w.t.report(nil, false)
		w.deliver(w, u)
	}
}

// discovery runs watch-all watchers on the tiers that are up, so that a
// chain watch-all learns of every service; each service it reports gets
// the usual per-service state.
type discovery struct {
	c *Chain

	mu       sync.Mutex // guards the fields below
	watchers []*tierWatcher
	stopped  bool
}

func newDiscovery(c *Chain) *discovery {
	return &discovery{c: c, watchers: make([]*tierWatcher, len(c.tiers))}
}

func (d *discovery) reconcile() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	for i, t := range d.c.tiers {
		w := d.watchers[i]
		if w != nil && (!t.isUp() || w.epoch != t.epoch.Load()) {
			w.stop()
			d.watchers[i], w = nil, nil
		}
		if w == nil && t.isUp() {
			d.watchers[i] = spawnWatcher(d.c, t, "", d.deliver)
		}
	}
}

func (d *discovery) deliver(_ *tierWatcher, u *registry.Update) {
	if registry.ValidateName(u.Service) != nil {
		return
	}
	if _, err := d.c.service(u.Service); err != nil {
		return
	}
}

func (d *discovery) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	for i, w := range d.watchers {
		if w != nil {
			w.stop()
			d.watchers[i] = nil
		}
	}
}
