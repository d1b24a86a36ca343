package microplugin

import (
	"context"
	"sync/atomic"
	"time"
)

// readContexts hands GetService calls without a GetContext a context whose
// deadline is shared by the reads of a short period, instead of a timer
// per read: a read the backend answers from memory never looks at its
// context, and context.WithTimeout would cost it a timer and several
// allocations. A context is reused while it is younger than a tenth of
// the timeout, so each read is bounded by 0.9 to 1 times the timeout.
//
// readContexts is safe for concurrent use.
type readContexts struct {
	cur atomic.Pointer[readContext]
}

type readContext struct {
	ctx    context.Context
	cancel context.CancelFunc // never called early: reads may still use ctx; its timer ends it
	d      time.Duration      // the timeout it was made for
	born   time.Time
}

// get returns a context that ends between 0.9*d and d from now.
func (r *readContexts) get(d time.Duration) context.Context {
	now := time.Now()
	if c := r.cur.Load(); c != nil && c.d == d && now.Sub(c.born) < d/10 {
		return c.ctx
	}
	c := &readContext{d: d, born: now}
	c.ctx, c.cancel = context.WithDeadline(context.Background(), now.Add(d))
	r.cur.Store(c)
	return c.ctx
}
