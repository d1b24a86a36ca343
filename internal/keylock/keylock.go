// Package keylock serializes work per key: a set of locks, one per key in
// use, whose Lock waits within a ctx. The adapters use it to run Register
// and Deregister of one instance one at a time without holding a lock
// across the network calls of other instances.
package keylock

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is returned by Lock when its stop channel closed first.
var ErrStopped = errors.New("keylock: stopped")

// Locks is a set of locks by key. The zero value is ready; a key's lock
// exists only while it is held or waited for. Locks is safe for concurrent
// use.
type Locks struct {
	mu sync.Mutex // guards m
	m  map[string]*lock
}

type lock struct {
	ch   chan struct{} // capacity 1: full while held
	refs int           // holders and waiters; guarded by Locks.mu
}

// Lock acquires key's lock and returns the function that releases it. It
// gives up when ctx is done, returning ctx's error, or when stop (which may
// be nil) is closed, returning ErrStopped.
func (l *Locks) Lock(ctx context.Context, stop <-chan struct{}, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*lock)
	}
	k := l.m[key]
	if k == nil {
		k = &lock{ch: make(chan struct{}, 1)}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	select {
	case k.ch <- struct{}{}:
		return func() {
			<-k.ch
			l.release(key, k)
		}, nil
	case <-ctx.Done():
		l.release(key, k)
		return nil, ctx.Err()
	case <-stop:
		l.release(key, k)
		return nil, ErrStopped
	}
}

func (l *Locks) release(key string, k *lock) {
	l.mu.Lock()
	if k.refs--; k.refs == 0 {
		delete(l.m, key)
	}
	l.mu.Unlock()
}

// held returns how many keys have a lock, for tests.
func (l *Locks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
