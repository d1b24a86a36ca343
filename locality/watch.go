package locality

import (
	"context"
	"fmt"
	"sync"

	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry: each Update carries the instances of
// the selected level. The watcher is a registry.Notifier when the wrapped
// registry's is.
func (w *wrapped) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if w.isClosed() {
		return nil, errClosed("watch")
	}
	iw, err := w.inner.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	wt := &watcher{inner: iw, w: w, last: make(map[string]*registry.Update)}
	w.mu.Lock()
	if w.closed.Load() {
		w.mu.Unlock()
		iw.Stop()
		return nil, errClosed("watch")
	}
	w.watchers[wt] = struct{}{}
	w.mu.Unlock()
	if n, ok := iw.(registry.Notifier); ok {
		return &notifier{watcher: wt, n: n}, nil
	}
	return wt, nil
}

// watcher filters an inner watcher. Next (or TryNext) is called from one
// goroutine at a time (the Watcher contract), so last needs no lock.
type watcher struct {
	inner registry.Watcher
	w     *wrapped
	last  map[string]*registry.Update // last delivered per service

	mu     sync.Mutex // guards closed
	closed bool       // ended by the wrapper's Close
}

func (w *watcher) Next() (*registry.Update, error) {
	for {
		u, err := w.inner.Next()
		if err != nil {
			return nil, w.err(err)
		}
		if u, ok := w.filter(u); ok {
			return u, nil
		}
	}
}

// err maps an error of the inner watcher: after the wrapper's Close, the
// end its watchers promise.
func (w *watcher) err(err error) error {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return fmt.Errorf("locality: watcher: %w: %w", registry.ErrClosed, registry.ErrStopped)
	}
	return err
}

// filter selects u's level and reports whether the result is a new state
// for its service (else it is dropped).
func (w *watcher) filter(u *registry.Update) (*registry.Update, bool) {
	u.Instances = w.w.sel.Select(u.Service, u.Instances)
	if prev, ok := w.last[u.Service]; ok && prev.SameState(u) {
		return nil, false
	}
	w.last[u.Service] = u.Clone()
	return u, true
}

func (w *watcher) Stop() error {
	w.w.mu.Lock()
	delete(w.w.watchers, w)
	w.w.mu.Unlock()
	return w.inner.Stop()
}

// end stops w for the wrapper's Close.
func (w *watcher) end() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.inner.Stop()
}

// notifier is a watcher over a registry.Notifier, and one itself, so that
// a consumer of many watchers (the chain, over a wrapped tier) reads them
// from one goroutine.
type notifier struct {
	*watcher
	n registry.Notifier
}

// Notify implements registry.Notifier: fn is the inner watcher's (a state
// the wrapper drops makes a call that finds nothing, as the contract
// allows).
func (n *notifier) Notify(fn func()) { n.n.Notify(fn) }

// TryNext implements registry.Notifier.
func (n *notifier) TryNext() (*registry.Update, bool, error) {
	for {
		u, ok, err := n.n.TryNext()
		if err != nil {
			return nil, true, n.err(err)
		}
		if !ok {
			return nil, false, nil
		}
		if u, ok := n.filter(u); ok {
			return u, true, nil
		}
	}
}
