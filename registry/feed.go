package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Feed is a ready-made Watcher for implementations: producers Publish full
// states and report failures, one consumer calls Next. It applies the watch
// rules of this package: latest state wins per service (a slow consumer never
// blocks a producer), a state equal to the last one delivered for its service
// is dropped, Next returns the caller's own copy, and Stop, the Watch ctx and
// Close all end it.
//
// Feed is safe for concurrent use. Its methods never block, except Next.
type Feed struct {
	wake chan struct{} // capacity 1: a pending wake-up for Next
	done chan struct{} // closed when the feed ends

	onStop   func()
	stopOnce sync.Once
	hooks    []func()               // guarded by mu: run once the feed has ended (a Hub forgetting it)
	notify   atomic.Pointer[func()] // Notify's fn

	mu        sync.Mutex         // guards the fields below
	stopAfter func() bool        // unregisters the ctx callback; nil until set
	pending   map[string]*Update // not yet delivered, latest per service
	order     []string           // services with a pending update, oldest first
	last      map[string]*Update // last delivered per service
	err       error              // transient, delivered once
	final     error              // set when the feed ends
}

// NewFeed returns a feed that ends when ctx is done or Stop or End is called;
// onStop (may be nil) runs once when it ends, so the producer can release its
// resources. onStop must not block, and may run before NewFeed returns (when
// ctx is already done): it must not use the returned feed through a variable
// assigned from NewFeed's result. A Hub forgets ended feeds by itself.
func NewFeed(ctx context.Context, onStop func()) *Feed {
	f := &Feed{
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		onStop:  onStop,
		pending: make(map[string]*Update),
		last:    make(map[string]*Update),
	}
	if ctx.Err() != nil {
		// Ended before anything can be published: Next reports it at once.
		f.End(fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx)))
		return f
	}
	// The callback may run before AfterFunc returns, so stopAfter is set
	// under the lock and End copes with its absence.
	stop := context.AfterFunc(ctx, func() {
		f.End(fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx)))
	})
	f.mu.Lock()
	f.stopAfter = stop
	f.mu.Unlock()
	return f
}

// Publish offers a new state. The feed takes ownership of u (it sorts
// u.Instances and keeps them): the caller must not modify u afterwards. A
// state equal to the last one delivered for its service replaces any pending
// one and is not delivered again. Publishing also clears a pending transient
// error: the new state supersedes it.
func (f *Feed) Publish(u *Update) {
	SortInstances(u.Instances)
	f.mu.Lock()
	if f.final != nil {
		f.mu.Unlock()
		return
	}
	f.err = nil
	_, queued := f.pending[u.Service]
	if last, ok := f.last[u.Service]; ok && last.SameState(u) {
		if queued {
			delete(f.pending, u.Service)
			f.removeOrder(u.Service)
		}
		f.mu.Unlock()
		return
	}
	f.pending[u.Service] = u
	if !queued {
		f.order = append(f.order, u.Service)
	}
	f.mu.Unlock()
	f.signal()
}

// Fail reports a transient failure: the next Next returns err once (after
// any pending state), then the feed goes on. A later Publish clears it.
func (f *Feed) Fail(err error) {
	f.mu.Lock()
	if f.final == nil {
		f.err = err
	}
	f.mu.Unlock()
	f.signal()
}

// Forget drops the memory of the last state delivered for service, so that
// the next Publish for it is delivered even if equal.
func (f *Feed) Forget(service string) {
	f.mu.Lock()
	delete(f.last, service)
	f.mu.Unlock()
}

// Next implements Watcher.
func (f *Feed) Next() (*Update, error) {
	for {
		if u, ok, err := f.TryNext(); ok {
			return u, err
		}
		select {
		case <-f.wake:
		case <-f.done:
		}
	}
}

// TryNext implements Notifier: Next without the wait. ok is false when
// Next would block.
func (f *Feed) TryNext() (u *Update, ok bool, err error) {
	u, ok, err = f.take()
	if u != nil {
		u = u.Clone()
	}
	return u, ok, err
}

// TryNextShared implements SharedNotifier: TryNext without the deep copy.
// The returned Update and its slice are the caller's; its Instances are
// the producer's and must not be modified.
func (f *Feed) TryNextShared() (u *Update, ok bool, err error) {
	u, ok, err = f.take()
	if u != nil {
		cp := *u
		cp.Instances = slices.Clone(u.Instances)
		u = &cp
	}
	return u, ok, err
}

// take hands over what Next would return: the pending state (kept as the
// last delivered one, so not to be modified), the transient error or the
// end; ok false when there is nothing.
func (f *Feed) take() (u *Update, ok bool, err error) {
	f.mu.Lock()
	switch {
	case f.final != nil:
		err = f.final
	case len(f.order) > 0:
		svc := f.order[0]
		f.order = f.order[1:]
		u = f.pending[svc]
		delete(f.pending, svc)
		f.last[svc] = u
	case f.err != nil:
		err, f.err = f.err, nil
	default:
		f.mu.Unlock()
		return nil, false, nil
	}
	f.mu.Unlock()
	return u, true, err
}

// Notify implements Notifier. fn is called at once if Next would not
// block now.
func (f *Feed) Notify(fn func()) {
	f.notify.Store(&fn)
	f.mu.Lock()
	ready := f.final != nil || len(f.order) > 0 || f.err != nil
	f.mu.Unlock()
	if ready {
		fn()
	}
}

// Stop implements Watcher: it ends the feed with ErrStopped.
func (f *Feed) Stop() error {
	f.End(ErrStopped)
	return nil
}

// End ends the feed: Next returns err from now on (ErrClosed when the
// registry closes). An err that does not already match ErrStopped is
// wrapped so that it does: every terminal error of Next matches ErrStopped,
// and one errors.Is check ends a watch loop. The first End wins; later
// calls do nothing.
func (f *Feed) End(err error) {
	if err == nil {
		err = ErrStopped
	} else if !errors.Is(err, ErrStopped) {
		err = fmt.Errorf("%w: %w", ErrStopped, err)
	}
	f.stopOnce.Do(func() {
		f.mu.Lock()
		f.final = err
		f.pending = nil
		f.order = nil
		stop, hooks := f.stopAfter, f.hooks
		f.hooks = nil
		f.mu.Unlock()
		if stop != nil {
			stop()
		}
		close(f.done)
		for _, hook := range hooks {
			hook()
		}
		if f.onStop != nil {
			f.onStop()
		}
		f.notifyFn()
	})
}

// Done is closed when the feed has ended; producers select on it.
func (f *Feed) Done() <-chan struct{} { return f.done }

// onEnd adds a hook run once the feed has ended, after Done is closed. It
// reports false, and keeps nothing, when the feed has ended already.
func (f *Feed) onEnd(hook func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.final != nil {
		return false
	}
	f.hooks = append(f.hooks, hook)
	return true
}

func (f *Feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
	f.notifyFn()
}

func (f *Feed) notifyFn() {
	if fn := f.notify.Load(); fn != nil {
		(*fn)()
	}
}

func (f *Feed) removeOrder(svc string) {
	for i, s := range f.order {
		if s == svc {
			f.order = append(f.order[:i], f.order[i+1:]...)
			return
		}
	}
}
