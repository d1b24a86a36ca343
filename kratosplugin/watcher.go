package kratosplugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-kratos/kratos/v2/log"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// watcher adapts a registry.Watcher to Kratos' Watcher.
//
// Next is called by one goroutine (Kratos' resolver loop); Stop may be called
// from any goroutine, any number of times.
type watcher struct {
	name   string
	log    *log.Helper
	cancel context.CancelFunc // ends the underlying watch and its creation loop
	ready  chan struct{}      // closed once uw is set or creation failed for good
	done   chan struct{}      // closed by Stop

	stopOnce sync.Once

	mu      sync.Mutex       // guards the fields below
	uw      registry.Watcher // the underlying watcher, nil until created
	err     error            // why creation failed for good
	stopped bool

	// Owned by the goroutine calling Next.
	delivered bool                 // a list was returned before
	last      []*registry.Instance // the last list returned
}

func newWatcher(ctx context.Context, r registry.Registry, name string, logger *log.Helper) *watcher {
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{
		name:   name,
		log:    logger,
		cancel: cancel,
		ready:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	go w.create(wctx, r)
	return w
}

// create starts the underlying watch, retrying with capped backoff while the
// registry fails for reasons that may pass (a backend that does not honour
// the contract's "Watch returns at once" and reports ErrUnavailable).
func (w *watcher) create(ctx context.Context, r registry.Registry) {
	var b backoff.Backoff
	for {
		uw, err := r.Watch(ctx, w.name)
		if err == nil {
			w.setWatcher(uw)
			return
		}
		if ctx.Err() != nil {
			w.setErr(fmt.Errorf("%w: %w", registry.ErrStopped, context.Cause(ctx)))
			return
		}
		if errors.Is(err, registry.ErrClosed) || errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrStopped) {
			w.setErr(err)
			return
		}
		d := b.Next()
		w.log.Warnf("watch %s: %v (retrying in %v)", registry.Quote(w.name), err, d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

func (w *watcher) setWatcher(uw registry.Watcher) {
	w.mu.Lock()
	stopped := w.stopped
	if !stopped {
		w.uw = uw
	}
	w.mu.Unlock()
	if stopped {
		uw.Stop()
	}
	close(w.ready)
}

func (w *watcher) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	close(w.ready)
}

// createErr returns why creation failed for good (unprefixed), nil if it
// did not (yet).
func (w *watcher) createErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Next returns the complete current instance list: at once on the first call
// (as soon as the underlying watch has started), later only when the list
// has changed. Each call returns fresh copies.
//
// Transient failures are logged and not returned: Kratos' resolvers would
// only log them too, then sleep a second before the next call, delaying the
// recovery they are waiting for; the last list stays in use meanwhile, which
// is what Kratos does with it anyway. Once the watcher has ended (Stop, the
// Watch ctx, the registry closed) Next returns an error that wraps
// context.Canceled, the one error on which Kratos' resolver loops exit.
func (w *watcher) Next() ([]*kratosregistry.ServiceInstance, error) {
	select {
	case <-w.ready:
	case <-w.done:
		return nil, w.ended(registry.ErrStopped)
	}
	w.mu.Lock()
	uw, err := w.uw, w.err
	w.mu.Unlock()
	if uw == nil {
		if err == nil {
			err = registry.ErrStopped // stopped before the watch started
		}
		return nil, w.ended(err)
	}
	for {
		u, err := uw.Next()
		if err != nil {
			// Terminal errors match ErrStopped (registry.Watcher's
			// contract); any other is transient, even one that wraps a
			// context error (the chain's, when every tier's call timed
			// out): ending here would end Kratos' resolver loop for good.
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return nil, w.ended(err)
			}
			w.log.Warnf("watch %s: %v (keeping the last known instances)", registry.Quote(w.name), err)
			continue
		}
		if u == nil || u.Service != w.name {
			continue
		}
		if w.delivered && registry.EqualInstances(w.last, u.Instances) {
			continue // e.g. the same set from another tier
		}
		w.delivered = true
		w.last = u.Instances
		return fromInstances(u.Instances), nil
	}
}

// ended returns the error Next gives once the watcher is over: it wraps err
// and context.Canceled.
func (w *watcher) ended(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("kratosplugin: watch %s: %w", registry.Quote(w.name), err)
	}
	return fmt.Errorf("kratosplugin: watch %s: %w: %w", registry.Quote(w.name), err, context.Canceled)
}

// Stop ends the watcher and unblocks a pending Next. It always returns nil.
func (w *watcher) Stop() error {
	w.stopOnce.Do(func() {
		w.mu.Lock()
		w.stopped = true
		uw := w.uw
		w.mu.Unlock()
		w.cancel()
		close(w.done)
		if uw != nil {
			uw.Stop()
		}
	})
	return nil
}
