package consul

import (
	"context"
	"fmt"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// minQueryInterval rate-limits each watch loop, as Consul asks of blocking
// query clients: a query that returns at once (an index that moves without
// a change that matters to us) does not turn into a busy loop.
const minQueryInterval = 50 * time.Millisecond

// watchRetryMax caps the backoff between failed queries of a watch loop.
const watchRetryMax = 5 * time.Second

// Watch implements registry.Registry. A named watch runs blocking queries
// on the service's passing instances; a watch-all ("") runs a blocking query
// on the catalog's service list and one such loop per listed service.
// Failures reach Next as transient errors; the loop retries with capped
// backoff and relists.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if r.isClosed() {
		return nil, errClosed("watch")
	}
	if name != "" {
		if err := registry.ValidateName(name); err != nil {
			return nil, fmt.Errorf("consul: watch: %w", err)
		}
	}
	lctx, cancel := context.WithCancel(r.ctx)
	feed := registry.NewFeed(ctx, cancel)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		feed.End(errClosed("watch"))
		return nil, errClosed("watch")
	}
	r.feeds[feed] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.feeds, feed)
			r.mu.Unlock()
		}()
		if name == "" {
			r.watchAll(lctx, feed)
		} else {
			r.watchService(lctx, feed, name, true)
		}
	}()
	return feed, nil
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
// (WaitTime, at most 5s) for a blocking query, RequestTimeout for a relist. A dead connection (a
// partition) thus fails the query instead of freezing the watcher.
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

// watchService publishes the passing instances of service name until ctx
// ends. With emptyFirst false (inside a watch-all) empty states are held
// back until a non-empty one was published. It reports whether it published
// a non-empty state last.
func (r *Registry) watchService(ctx context.Context, feed *registry.Feed, name string, emptyFirst bool) (nonEmpty bool) {
	q := blocking{b: backoff.Backoff{Base: 100 * time.Millisecond, Max: watchRetryMax}}
	warned := make(map[string]bool)
	published := false
	for q.wait(ctx) {
		opts, cancel := r.options(ctx, &q)
		entries, meta, err := r.client.Health().Service(name, "", true, opts)
		cancel()
		if ctx.Err() != nil {
			return nonEmpty
		}
		if err != nil {
			feed.Fail(fmt.Errorf("consul: watch %q: %w", name, classify(err)))
			if !q.failed(ctx) {
				return nonEmpty
			}
			continue
		}
		ins := r.decodeEntries(entries, warned)
		if len(ins) == 0 && meta.ResultsFilteredByACLs && !warned[""] {
			warned[""] = true
			r.log.Warn("watch sees no instances: results filtered by ACLs, the token may not read this service", "service", name)
		}
		if len(ins) > 0 || emptyFirst || published {
			feed.Publish(&registry.Update{Service: name, Instances: ins, Source: Source, Revision: int64(meta.LastIndex), Time: time.Now()})
			published = true
			nonEmpty = len(ins) > 0
		}
		q.ok(meta.LastIndex)
	}
	return nonEmpty
}

// watchAll follows the catalog's service list and runs a watchService loop
// per service; when a service leaves the catalog its loop stops and, if it
// had published instances, an empty state is published for it.
func (r *Registry) watchAll(ctx context.Context, feed *registry.Feed) {
	type child struct {
		cancel   context.CancelFunc
		done     chan struct{}
		nonEmpty bool // written before done is closed
	}
	children := make(map[string]*child)
	defer func() {
		for _, c := range children {
			c.cancel()
		}
		for _, c := range children {
			<-c.done
		}
	}()
	q := blocking{b: backoff.Backoff{Base: 100 * time.Millisecond, Max: watchRetryMax}}
	for q.wait(ctx) {
		opts, cancel := r.options(ctx, &q)
		services, meta, err := r.client.Catalog().Services(opts)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			feed.Fail(fmt.Errorf("consul: watch all: %w", classify(err)))
			if !q.failed(ctx) {
				return
			}
			continue
		}
		for name := range services {
			if children[name] != nil || registry.ValidateName(name) != nil {
				continue
			}
			cctx, cancel := context.WithCancel(ctx)
			c := &child{cancel: cancel, done: make(chan struct{})}
			children[name] = c
			go func() {
				defer close(c.done)
				c.nonEmpty = r.watchService(cctx, feed, name, false)
			}()
		}
		for name, c := range children {
			if _, ok := services[name]; ok {
				continue
			}
			c.cancel()
			<-c.done
			delete(children, name)
			if c.nonEmpty {
				feed.Publish(&registry.Update{Service: name, Instances: []*registry.Instance{}, Source: Source, Revision: int64(meta.LastIndex), Time: time.Now()})
			}
		}
		q.ok(meta.LastIndex)
	}
}
