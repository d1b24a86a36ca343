package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

// subscription is one watcher: its feed and the service it watches ("" for
// every service). Its fields are guarded by Registry.mu.
type subscription struct {
	name  string
	feed  *registry.Feed
	ended bool // the feed's onStop ran
}

// Watch implements registry.Registry. Every watcher is served from the
// informers' caches by one dispatcher goroutine (see the package doc,
// "Watch"). It returns at once; the first Next returns the state once the
// informers have synced.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if r.isClosed() {
		return nil, errClosed("watch")
	}
	if name != "" {
		if err := registry.ValidateName(name); err != nil {
			return nil, fmt.Errorf("kubernetes: watch: %w", err)
		}
	}
	r.start()
	s := &subscription{name: name}
	feed := registry.NewFeed(ctx, func() { r.unsubscribe(s) })
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		feed.End(errClosed("watch"))
		return nil, errClosed("watch")
	}
	if s.ended { // ctx was done already: Next says so
		r.mu.Unlock()
		return feed, nil
	}
	s.feed = feed
	if name == "" {
		r.watchAll++
	} else {
		r.watched[name]++
	}
	r.newFeeds = append(r.newFeeds, s)
	r.mu.Unlock()
	// The dispatcher adds the feed to the hub with its first state, so
	// that the hub knows what a watch-all was shown (registry.Hub's rule).
	if down, _, err := r.reach.state(); down {
		feed.Fail(fmt.Errorf("kubernetes: %w: %w", registry.ErrUnavailable, err))
	}
	r.signal()
	return feed, nil
}

// unsubscribe is the onStop of a watcher's feed. It does not block.
func (r *Registry) unsubscribe(s *subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.ended = true
	if s.feed == nil {
		return
	}
	if s.name == "" {
		r.watchAll--
	} else if r.watched[s.name]--; r.watched[s.name] <= 0 {
		delete(r.watched, s.name)
	}
}

// failWatchers reports a transient error to every watcher: those in the
// hub, and those still waiting for their first state (the dispatcher adds
// them to the hub with it, which may never come while the error lasts).
func (r *Registry) failWatchers(err error) {
	r.mu.Lock()
	waiting := slices.Clone(r.newFeeds)
	r.mu.Unlock()
	r.hub.Fail(err)
	for _, s := range waiting {
		if s.feed != nil {
			s.feed.Fail(err)
		}
	}
}

// changed marks services whose objects changed, for the dispatcher. It is
// called from informer event handlers and must not block.
func (r *Registry) changed(names ...string) {
	if len(names) == 0 {
		return
	}
	r.mu.Lock()
	for _, n := range names {
		r.dirty[n] = true
	}
	r.mu.Unlock()
	r.signal()
}

func (r *Registry) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// dispatch is the one goroutine that publishes states: the changed
// services to their watchers and the watch-alls, and each new watcher's
// first state. All states are computed from the informers' caches at the
// moment they are published, in one order, so a watcher never receives an
// older state after a newer one.
func (r *Registry) dispatch(ctx context.Context) {
	synced := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		if !synced {
			select {
			case <-r.synced:
				synced = true
			default:
				continue // states come once the caches hold the server's
			}
			// Everything watched so far gets its state now: the first
			// for the watchers already there.
			r.mu.Lock()
			clear(r.dirty)
			r.mu.Unlock()
		}
		r.mu.Lock()
		dirty := r.dirty
		r.dirty = make(map[string]bool)
		fresh := r.newFeeds
		r.newFeeds = nil
		all := r.watchAll > 0
		var names []string
		for n := range dirty {
			if all || r.watched[n] > 0 {
				names = append(names, n)
			}
		}
		r.mu.Unlock()
		slices.Sort(names)
		now := time.Now()
		rev := r.revision()
		for _, n := range names {
			r.hub.Publish(r.update(n, rev, now))
		}
		for _, s := range fresh {
			if s.name != "" {
				r.hub.Add(s.feed, s.name, r.update(s.name, rev, now))
				continue
			}
			var first []*registry.Update
			for _, n := range r.serviceNames() {
				if u := r.update(n, rev, now); len(u.Instances) > 0 {
					first = append(first, u)
				}
			}
			r.hub.Add(s.feed, "", first...)
		}
		// A first state is the caches' and clears the feed's pending error:
		// a new watcher still hears of a failure that lasts (the API server
		// down, a read refused), which failWatchers told before it joined
		// the hub, or while the dispatcher was adding it.
		if len(fresh) > 0 {
			if err := r.failure(); err != nil {
				for _, s := range fresh {
					s.feed.Fail(err)
				}
			}
		}
	}
}

// failure returns the failure watchers are told of while it lasts: the API
// server unreachable, else a source that cannot be read; nil if none.
func (r *Registry) failure() error {
	if down, _, err := r.reach.state(); down {
		return fmt.Errorf("kubernetes: %w: %w", registry.ErrUnavailable, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if keys := slices.Sorted(maps.Keys(r.listErrs)); len(keys) > 0 {
		return fmt.Errorf("kubernetes: read %s: %w", keys[0], r.listErrs[keys[0]])
	}
	return nil
}

// update returns the current state of name.
func (r *Registry) update(name string, rev int64, now time.Time) *registry.Update {
	return &registry.Update{Service: name, Instances: r.instances(name), Source: Source, Revision: rev, Time: now}
}

// serviceNames returns every service name the caches index, with or
// without instances, sorted.
func (r *Registry) serviceNames() []string {
	seen := map[string]bool{}
	for _, s := range r.sources {
		for _, n := range s.inf.GetIndexer().ListIndexFuncValues(indexService) {
			seen[n] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
