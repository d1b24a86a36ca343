package chain

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

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
	since   time.Time // when it started
	deliver func(w *tierWatcher, u *registry.Update)
	fail    func(w *tierWatcher, err error) // nil: errors go to the tier's health only
	shared  bool                            // a watch-all (discovery's): every service's state in the tier
}

func spawnWatcher(c *Chain, t *tier, name string, deliver func(*tierWatcher, *registry.Update), fail func(*tierWatcher, error)) *tierWatcher {
	ctx, cancel := context.WithCancel(c.ctx)
	w := &tierWatcher{t: t, name: name, epoch: t.epoch.Load(), ctx: ctx, cancel: cancel, since: time.Now(), deliver: deliver, fail: fail, shared: name == ""}
	if !c.spawn(w.run) {
		cancel()
		return nil
	}
	return w
}

// stop ends the watcher; it does not wait for its goroutine.
func (w *tierWatcher) stop() { w.cancel() }

// failed reports a watch failure: to the tier's health, and to the
// watcher's owner.
func (w *tierWatcher) failed(err error) {
	w.t.report(err, false)
	if w.fail != nil && w.ctx.Err() == nil {
		w.fail(w, err)
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
	w.watch(&backoff.Backoff{Base: 50 * time.Millisecond, Max: 5 * time.Second})
}

// watch calls the tier's Watch until it succeeds (or w is stopped) and
// reads the watcher: a registry.Notifier is handed to the tier's pump and
// watch returns; another is read here, and watched again when it ends.
func (w *tierWatcher) watch(b *backoff.Backoff) {
	handed := false
	defer func() {
		if !handed {
			w.cancel()
		}
	}()
	for w.ctx.Err() == nil {
		rw, err := w.t.reg.Watch(w.ctx, w.name)
		if err != nil {
			if w.ctx.Err() != nil {
				return
			}
			w.failed(err)
			w.t.c.log.Debug("chain: tier watch failed", "tier", w.t.name, "service", w.name, "error", err)
			if !w.wait(b.Next()) {
				return
			}
			continue
		}
		if n, ok := rw.(registry.Notifier); ok {
			w.t.c.pump.attach(w, rw, n, b)
			handed = true
			return
		}
		stopAfter := context.AfterFunc(w.ctx, func() { rw.Stop() })
		w.next(rw, b)
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
			w.failed(err)
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

	// Guarded by c.allMu, with the watch-all feeds it serves.
	watchers []*tierWatcher
	stopped  bool
}

func newDiscovery(c *Chain) *discovery {
	return &discovery{c: c, watchers: make([]*tierWatcher, len(c.tiers))}
}

func (d *discovery) reconcile() {
	d.c.allMu.Lock()
	defer d.c.allMu.Unlock()
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
			d.watchers[i] = spawnWatcher(d.c, t, "", d.deliver, nil)
		}
	}
}

// watcher returns the discovery's current watcher of tier i, nil if none.
// Called with c.allMu not held.
func (d *discovery) watcher(i int) *tierWatcher {
	d.c.allMu.Lock()
	defer d.c.allMu.Unlock()
	if d.stopped {
		return nil
	}
	return d.watchers[i]
}

// deliver hands a service's state in the tier to the service: with a
// watch-all running, services take their states in a tier from the
// tier's watch-all, not from a watch of their own (one watch per tier,
// whatever the number of services).
func (d *discovery) deliver(w *tierWatcher, u *registry.Update) {
	if registry.ValidateName(u.Service) != nil {
		return
	}
	s, err := d.c.serviceFrom(u.Service, w)
	if err != nil {
		return
	}
	s.onTierUpdate(w, u)
}

func (d *discovery) stop() {
	d.c.allMu.Lock()
	defer d.c.allMu.Unlock()
	d.stopped = true
	for i, w := range d.watchers {
		if w != nil {
			w.stop()
			d.watchers[i] = nil
		}
	}
}

// pump reads the tier watchers whose registry.Watcher is a
// registry.Notifier (every backend of this module's: they are
// registry.Feeds) on the chain's loop: watching N services in T tiers then
// costs no goroutine of its own. A tier watcher runs a goroutine of its own
// only while it calls (or waits to call again) the tier's Watch, and for
// the whole watch when the watcher is not a Notifier.
type pump struct {
	c *Chain

	mu    sync.Mutex // guards ready
	ready []*pumped
}

// pumped is one tier watcher's current underlying watcher, read by the
// pump.
type pumped struct {
	w         *tierWatcher
	rw        registry.Watcher
	n         registry.Notifier
	b         *backoff.Backoff
	stopAfter func() bool // unregisters the Stop on w's ctx
	errs      int         // consecutive errors (owned by the loop)
	ended     bool        // the pump is done with it (owned by the loop)
	paused    atomic.Bool // backing off after repeated errors: not read until resumed
	resume    *time.Timer // ends the pause (owned by the loop)
	p         *pump
	queued    atomic.Bool // in the pump's ready list
}

// maxTurn is how many reads of one watcher the pump makes before it
// serves the others that are ready.
const maxTurn = 64

func newPump(c *Chain) *pump { return &pump{c: c} }

// attach hands rw over to the pump: from now on its states reach w's
// deliver from the loop's goroutine.
func (p *pump) attach(w *tierWatcher, rw registry.Watcher, n registry.Notifier, b *backoff.Backoff) {
	pw := &pumped{w: w, rw: rw, n: n, b: b, p: p}
	pw.stopAfter = context.AfterFunc(w.ctx, func() { rw.Stop() })
	n.Notify(func() { p.enqueue(pw) })
}

// enqueue marks pw ready; it never blocks (it runs on a producer's
// goroutine, perhaps under its locks).
func (p *pump) enqueue(pw *pumped) {
	if !pw.queued.CompareAndSwap(false, true) {
		return
	}
	p.mu.Lock()
	p.ready = append(p.ready, pw)
	p.mu.Unlock()
	p.c.kickLoop()
}

// drain reads the watchers that are ready, each at most maxTurn states at
// a time (a watcher with more is queued again for the next turn).
func (p *pump) drain(c *Chain) {
	p.mu.Lock()
	batch := p.ready
	p.ready = nil
	p.mu.Unlock()
	for _, pw := range batch {
		if c.ctx.Err() != nil {
			return
		}
		pw.queued.Store(false) // a notify from here on queues it again
		pw.drain()
	}
}

// drain delivers what pw's watcher has ready, at most maxTurn states per
// turn. When the watch ends it restarts it after a backoff (on a goroutine
// of its own); when it keeps failing it reads it again after a backoff.
func (pw *pumped) drain() {
	w := pw.w
	for turn := 0; !pw.ended; turn++ {
		if turn == maxTurn {
			// Fair to the tier's other watchers: the rest on a later turn.
			pw.p.enqueue(pw)
			return
		}
		if w.ctx.Err() != nil {
			pw.end()
			return
		}
		if pw.paused.Load() {
			return
		}
		u, ok, err := pw.next()
		if !ok {
			return
		}
		if w.ctx.Err() != nil {
			pw.end()
			return
		}
		if err != nil {
			w.failed(err)
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				w.t.c.log.Debug("chain: tier watcher ended", "tier", w.t.name, "service", w.name, "error", err)
				pw.restart()
				return
			}
			w.t.c.log.Debug("chain: tier watch error", "tier", w.t.name, "service", w.name, "error", err)
			// Feeds report an error once and then wait; one that keeps
			// failing is read again only after a backoff.
			if pw.errs++; pw.errs > 1 {
				pw.pause(pw.b.Next())
				return
			}
			continue
		}
		pw.errs = 0
		pw.b.Reset()
		w.t.report(nil, false)
		w.deliver(w, u)
	}
}

// next takes pw's next state, without a deep copy from a
// registry.SharedNotifier (the chain never modifies Instances: it keeps the
// producer's), else with TryNext's.
func (pw *pumped) next() (*registry.Update, bool, error) {
	if sn, ok := pw.n.(registry.SharedNotifier); ok {
		return sn.TryNextShared()
	}
	return pw.n.TryNext()
}

// pause stops reading pw for d; then the pump reads it again. A stop of
// its tier watcher meanwhile ends it at once (the watcher's end notifies,
// and drain looks at the context first).
func (pw *pumped) pause(d time.Duration) {
	pw.paused.Store(true)
	pw.resume = time.AfterFunc(d, func() {
		pw.paused.Store(false)
		pw.p.enqueue(pw)
	})
}

// end stops the underlying watcher and forgets it.
func (pw *pumped) end() {
	pw.ended = true
	if pw.resume != nil {
		pw.resume.Stop()
	}
	pw.n.Notify(func() {})
	if pw.stopAfter() {
		pw.rw.Stop()
	}
}

// restart ends the underlying watcher and, unless w is stopped, starts
// the tier's Watch again after a backoff (on a goroutine of its own until
// the new watcher is handed back), as tierWatcher.watch does.
func (pw *pumped) restart() {
	pw.end()
	w := pw.w
	if w.ctx.Err() != nil {
		return
	}
	b := pw.b
	if !w.t.c.spawn(func() {
		if w.wait(b.Next()) {
			w.watch(b)
		}
	}) {
		w.cancel()
	}
}
