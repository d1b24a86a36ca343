package consul

import (
	"context"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/backoff"
)

// minQueryInterval rate-limits each blocking loop, as Consul asks of blocking
// query clients: a query that returns at once (an index that moves without
// a change that matters to us) does not turn into a busy loop.
const minQueryInterval = 50 * time.Millisecond

// watchRetryMax caps the backoff between failed queries of the watch hub.
const watchRetryMax = 5 * time.Second

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
// (WaitTime, at most 5s) for a blocking query, Timeout for a relist.
// A dead connection (a partition) thus fails the query instead of freezing
// the watchers.
func (r *Registry) options(ctx context.Context, q *blocking) (*consulapi.QueryOptions, context.CancelFunc) {
	timeout := r.cfg.Timeout
	opts := &consulapi.QueryOptions{Datacenter: r.cfg.Datacenter}
	if q.index > 0 {
		opts.WaitIndex = q.index
		opts.WaitTime = r.cfg.WaitTime
		timeout = r.cfg.WaitTime + r.cfg.WaitTime/16 + min(5*time.Second, r.cfg.WaitTime)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return opts.WithContext(ctx), cancel
}
