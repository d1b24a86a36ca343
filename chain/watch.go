package chain

import (
	"context"
	"time"

	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry. The watcher's first Next returns the
// service's current view (from memory, or from the snapshot at start); each
// later Update is a change of the view, with Source the tier (or tiers, or
// "snapshot") it came from. Watch("") watches every service the tiers and
// the snapshot know of. A snapshot state older than WithSnapshotMaxAge is
// never delivered: Next returns a transient error wrapping
// registry.ErrUnavailable instead.
func (c *Chain) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if c.isClosed() {
		return nil, c.errClosed("watch " + name)
	}
	if name == "" {
		return c.watchAll(ctx)
	}
	if err := registry.ValidateName(name); err != nil {
		return nil, err
	}
	s, err := c.service(name)
	if err != nil {
		return nil, err
	}
	return s.watch(ctx)
}

func (c *Chain) watchAll(ctx context.Context) (registry.Watcher, error) {
	f := newFeed(ctx, func(f *registry.Feed) {
		c.allMu.Lock()
		delete(c.allFeeds, f)
		c.allMu.Unlock()
	})
	c.allMu.Lock()
	if c.allClosed {
		// Close ran after Watch's check: it would never end this feed.
		c.allMu.Unlock()
		err := c.errClosed("watch")
		f.End(err)
		return nil, err
	}
	select {
	case <-f.Done():
		c.allMu.Unlock()
		return f, nil
	default:
	}
	c.allFeeds[f] = struct{}{}
	d := c.disc
	if d == nil {
		d = newDiscovery(c)
		c.disc = d
	}
	c.allMu.Unlock()
	// Services only the snapshot knows are served from it until the tiers
	// say otherwise.
	for _, name := range c.snap.names(time.Now()) {
		if _, err := c.service(name); err != nil {
			f.End(err)
			return nil, err
		}
	}
	now := time.Now()
	for _, s := range c.serviceList() {
		s.mu.Lock()
		if v := s.cur.Load(); v != nil && len(v.u.Instances) > 0 && !v.expired(now) {
			f.Publish(v.publishable())
		}
		s.mu.Unlock()
	}
	d.reconcile()
	return f, nil
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
	switch v := s.cur.Load(); {
	case v != nil && v.expired(time.Now()):
		f.Fail(v.tooOld("watch", s.name))
	case v != nil:
		f.Publish(v.publishable())
	case s.firstErr != nil:
		f.Fail(s.firstErr)
	}
	return f, nil
}
