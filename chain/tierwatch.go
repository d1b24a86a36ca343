package chain

import (
	"context"
	"errors"
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
}

func startTierWatcher(s *service, t *tier) *tierWatcher {
	return spawnWatcher(s.c, t, s.name, s.onTierUpdate, s.onTierError)
}

func spawnWatcher(c *Chain, t *tier, name string, deliver func(*tierWatcher, *registry.Update), fail func(*tierWatcher, error)) *tierWatcher {
	ctx, cancel := context.WithCancel(c.ctx)
	w := &tierWatcher{t: t, name: name, epoch: t.epoch.Load(), ctx: ctx, cancel: cancel, since: time.Now(), deliver: deliver, fail: fail}
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
			w.t.pump.attach(w, rw, n, b)
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

func (d *discovery) deliver(_ *tierWatcher, u *registry.Update) {
	if registry.ValidateName(u.Service) != nil {
		return
	}
	if _, err := d.c.service(u.Service); err != nil {
		return
	}
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
