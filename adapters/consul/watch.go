package consul

import (
	"context"
	"fmt"

	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry. Every watcher of the registry shares
// one hub (see doc.go, "Watch"): two blocking queries, on the checks and on
// the catalog, tell which services changed, and those are read again, a few
// at a time. The first Next returns the service's state read after Watch was
// called. Failures reach Next as transient errors; the hub retries with
// capped backoff and reads again what may have changed meanwhile.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if r.isClosed() {
		return nil, errClosed("watch")
	}
	if err := registry.ValidateWatch(name); err != nil {
		return nil, fmt.Errorf("consul: watch: %w", err)
	}
	f := registry.NewFeed(ctx, r.unwatched)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		f.End(errClosed("watch")) // its onStop takes r.mu
		return nil, errClosed("watch")
	}
	defer r.mu.Unlock()
	select {
	case <-f.Done():
		return f, nil // ctx was done already: Next says so
	default:
	}
	if r.hub == nil {
		r.hub = newHub(r)
		r.wg.Add(1)
		go r.hub.run()
	}
	// A feed ending from now on waits for r.mu in its onStop, which then
	// finds it gone from r.feeds (or never added) and stops the hub if it
	// was the last.
	r.hub.add(f, name)
	return f, nil
}

// unwatched is the onStop of every watcher's feed (which the registry's
// feeds have forgotten by then): the hub stops with its last watcher.
func (r *Registry) unwatched() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hub != nil && r.hub.removed() {
		r.hub = nil
	}
}
