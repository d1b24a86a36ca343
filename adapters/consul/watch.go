package consul

import (
	"context"
	"fmt"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// minQueryInterval rate-limits each blocking loop, as Consul asks of blocking
// query clients: a query that returns at once (an index that moves without
// a change that matters to us) does not turn into a busy loop.
const minQueryInterval = 50 * time.Millisecond

// watchRetryMax caps the backoff between failed queries of the watch hub.
const watchRetryMax = 5 * time.Second

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
	if name != "" {
		if err := registry.ValidateName(name); err != nil {
			return nil, fmt.Errorf("consul: watch: %w", err)
		}
	}
	s := &subscription{name: name}
	feed := registry.NewFeed(ctx, func() { r.unsubscribe(s) })
	for {
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
		r.feeds[feed] = struct{}{}
		h := r.hub
		if h == nil {
			h = newHub(r)
			if added, _ := h.add(feed, name); !added { // ended meanwhile
				r.mu.Unlock()
				return feed, nil
			}
			s.hub, r.hub = h, h
			r.wg.Add(1)
			go h.run()
			r.mu.Unlock()
			return feed, nil
		}
		s.hub = h
		r.mu.Unlock()
		if _, stopped := h.add(feed, name); !stopped {
			return feed, nil
		}
		// Its last watcher left meanwhile: start another.
		r.mu.Lock()
		if r.hub == h {
			r.hub = nil
		}
		r.mu.Unlock()
	}
}

// subscription is one watcher's link to the hub. Its fields are guarded by
// Registry.mu.
type subscription struct {
	name  string
	feed  *registry.Feed // nil until Watch registers it
	hub   *hub
	ended bool // the feed's onStop ran
}

// unsubscribe is the onStop of a watcher's feed: it forgets the feed and
// stops the hub when it was the last watcher. It does not block.
func (r *Registry) unsubscribe(s *subscription) {
	r.mu.Lock()
	s.ended = true
	f, h := s.feed, s.hub
	if f != nil {
		delete(r.feeds, f)
	}
	r.mu.Unlock()
	if h == nil || !h.remove(f, s.name) {
		return
	}
	r.mu.Lock()
	if r.hub == h {
		r.hub = nil
	}
	r.mu.Unlock()
}

// blocking tracks the index of a blocking-query loop and applies Consul's
// rules for it (API docs, "Blocking Queries" implementation details).
type blocking struct {
	index uint64    // the next query's WaitIndex; 0: a non-blocking read
	last  time.Time // when the last query started
	b     backoff.Backoff
}

// wait rate-limits the loop; it returns false when ctx ends.
func (q *blocking) wait(ctx context.Context) bool {
	if d := minQueryInterval - time.Since(q.last); d > 0 && !sleep(ctx, d) {
		return false
	}
	q.last = time.Now()
	return true
}

// ok records a successful query's X-Consul-Index.
func (q *blocking) ok(idx uint64) {
	q.b.Reset()
	switch {
	case idx < q.index:
		q.index = 0 // the index went backwards (a new cluster, a snapshot restore): start over
	case idx == 0:
		q.index = 1 // never block on 0: that returns at once, a busy loop
	default:
		q.index = idx
	}
}

// failed backs off after a failed query; the next query relists (index 0),
// so that what changed during the failure is seen at once. It returns false
// when ctx ends.
func (q *blocking) failed(ctx context.Context) bool {
	q.index = 0
	return sleep(ctx, q.b.Next())
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// options returns the QueryOptions of one query of a loop and the ctx that
// bounds it: WaitTime plus Consul's jitter (up to WaitTime/16) plus a margin
// (WaitTime, at most 5s) for a blocking query, RequestTimeout for a relist.
// A dead connection (a partition) thus fails the query instead of freezing
// the watchers.
func (r *Registry) options(ctx context.Context, q *blocking) (*consulapi.QueryOptions, context.CancelFunc) {
	timeout := r.cfg.RequestTimeout
	opts := &consulapi.QueryOptions{Datacenter: r.cfg.Datacenter}
	if q.index > 0 {
		opts.WaitIndex = q.index
		opts.WaitTime = r.cfg.WaitTime
		timeout = r.cfg.WaitTime + r.cfg.WaitTime/16 + min(5*time.Second, r.cfg.WaitTime)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return opts.WithContext(ctx), cancel
}
