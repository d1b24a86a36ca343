package microplugin

import (
	"context"
	"sync"
	"time"
)

// lazyTimeout is the context of one read: parent bounded by a deadline,
// whose timer is only set up when something waits on it (Done or Err).
// A read the backend answers from memory never looks at its context, and
// context.WithTimeout would cost it a timer and several allocations.
//
// Call stop when the call returns, as with a CancelFunc.
type lazyTimeout struct {
	parent   context.Context
	deadline time.Time

	once   sync.Once
	ctx    context.Context    // set by arm
	cancel context.CancelFunc // set by arm
}

var _ context.Context = (*lazyTimeout)(nil)

// init sets c up; c must not have been used.
func (c *lazyTimeout) init(parent context.Context, d time.Duration) {
	if parent == nil {
		parent = context.Background()
	}
	c.parent, c.deadline = parent, time.Now().Add(d)
}

func (c *lazyTimeout) arm() {
	c.once.Do(func() { c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline) })
}

// Deadline returns the earlier of the parent's deadline and its own.
func (c *lazyTimeout) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *lazyTimeout) Done() <-chan struct{} {
	c.arm()
	return c.ctx.Done()
}

func (c *lazyTimeout) Err() error {
	c.arm()
	return c.ctx.Err()
}

func (c *lazyTimeout) Value(key any) any { return c.parent.Value(key) }

// stopped stands for a lazyTimeout's context once its call has returned.
var stopped = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// stop releases the timer, if one was set up. Afterwards the context is
// done (context.Canceled), as after a CancelFunc.
func (c *lazyTimeout) stop() {
	c.once.Do(func() { c.ctx = stopped })
	if c.cancel != nil {
		c.cancel()
	}
}
