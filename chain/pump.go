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

// pump reads, from one goroutine per tier, the tier watchers whose
// registry.Watcher is a registry.Notifier (every backend of this module's:
// they are registry.Feeds): watching N services then costs O(tiers)
// goroutines, not one per service and tier. A tier watcher runs a
// goroutine of its own only while it calls (or waits to call again) the
// tier's Watch, and for the whole watch when the watcher is not a Notifier.
type pump struct {
	wake chan struct{} // capacity 1

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
	errs      int         // consecutive errors (owned by the pump goroutine)
	ended     bool        // the pump is done with it (owned by the pump goroutine)
	paused    atomic.Bool // backing off after repeated errors: not read until resumed
	resume    *time.Timer // ends the pause (owned by the pump goroutine)
	p         *pump
	queued    atomic.Bool // in the pump's ready list
}

// maxTurn is how many reads of one watcher the pump makes before it
// serves the others that are ready.
const maxTurn = 64

func newPump() *pump { return &pump{wake: make(chan struct{}, 1)} }

// attach hands rw over to the pump: from now on its states reach w's
// deliver from the pump's goroutine.
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
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run reads ready watchers until ctx is done.
func (p *pump) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		p.mu.Lock()
		batch := p.ready
		p.ready = nil
		p.mu.Unlock()
		for _, pw := range batch {
			if ctx.Err() != nil {
				return
			}
			pw.queued.Store(false) // a notify from here on queues it again
			pw.drain()
		}
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
		u, ok, err := pw.n.TryNext()
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
