package chain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regchain/regchain/registry"
)

// errEvicted is returned by a service removed from memory (idle, absent, or
// over the cap) while a caller held it: the caller takes a fresh one.
var errEvicted = errors.New("chain: service evicted")

// await returns the view, loading it from the tiers if there is none yet.
func (s *service) await(ctx context.Context) (*view, error) {
	s.mu.Lock()
	if v := s.view.Load(); v != nil {
		s.mu.Unlock()
		return v, nil
	}
	if s.closed {
		err := s.c.errClosed("get " + s.name)
		if s.evicted {
			err = errEvicted
		}
		s.mu.Unlock()
		return nil, err
	}
	ch := s.loading
	if ch == nil {
		ch = s.startLoadLocked()
		if ch == nil {
			s.mu.Unlock()
			return nil, s.c.errClosed("get " + s.name)
		}
	}
	s.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("chain: get %s: %w", registry.Quote(s.name), ctx.Err())
	}
	if v := s.view.Load(); v != nil {
		return v, nil
	}
	s.mu.Lock()
	err := s.loadErr
	if err == nil && s.evicted {
		err = errEvicted
	}
	s.mu.Unlock()
	if err == nil {
		err = s.c.errClosed("get " + s.name)
	}
	return nil, err
}

func (s *service) startLoadLocked() chan struct{} {
	ch := make(chan struct{})
	s.loading = ch
	if !s.c.spawn(func() { s.load(ch) }) {
		s.loading = nil
		return nil
	}
	return ch
}

// load gives the service its first view.
func (s *service) load(done chan struct{}) {
	err := s.loadTiers()
	s.mu.Lock()
	s.loadErr = err
	s.loading = nil
	var fail []*registry.Feed
	if s.view.Load() == nil && err != nil {
		for f := range s.feeds {
			fail = append(fail, f)
		}
	}
	s.mu.Unlock()
	for _, f := range fail {
		f.Fail(err)
	}
	close(done)
}

// loaded is the outcome of one tier's first read.
type loaded struct {
	idx int
	u   *registry.Update
	err error
}

// loadTiers reads the service from the tiers that are up, hedged: the first
// tier at once, each next one (and the snapshot) after another hedge delay
// without a usable answer. The first tier in chain order whose state counts
// (rule 3) wins once every tier above it has failed or been waited for
// long enough; under Merge every answer within the first hedge delay is
// merged. The reads still running when the view is set are left to finish
// (or time out) on their own: their tiers' watchers take over.
func (s *service) loadTiers() error {
	c := s.c
	n := len(c.tiers)
	results := make(chan loaded, n)
	state := make([]int, n) // 0 not asked, 1 asked, 2 answered, 3 failed, 4 asked and waited for a hedge delay
	data := make([]*registry.Update, n)
	var errs []error
	next := 0
	askNext := func() bool {
		for ; next < n; next++ {
			t := c.tiers[next]
			if !t.isUp() {
				state[next] = 3
				errs = append(errs, fmt.Errorf("tier %s is down", t.name))
				continue
			}
			state[next] = 1
			i := next
			next++
			if !c.spawn(func() {
				u, err := c.readTier(c.ctx, t, s.name)
				results <- loaded{i, u, err}
			}) {
				state[i] = 3
				return false
			}
			return true
		}
		return false
	}
	askNext()
	hedge := time.NewTimer(c.opts.hedgeDelay)
	defer hedge.Stop()
	snapTried := false
	for {
		if s.view.Load() != nil {
			return nil // a watcher (or the snapshot) was faster
		}
		// Decide with what has come in: the first tier in order that is
		// settled with a state that counts, every tier above it failed.
		if u, mask, ok := s.pick(state, data); ok {
			return s.setLoaded(u, mask, data)
		}
		outstanding := false
		for i := range n {
			if state[i] == 1 || state[i] == 4 {
				outstanding = true
			}
		}
		if !outstanding && next >= n {
			return s.loadFallback(data, errs)
		}
		if !outstanding {
			askNext()
			continue
		}
		select {
		case r := <-results:
			switch {
			case r.err == nil:
				state[r.idx], data[r.idx] = 2, r.u
			case c.ctx.Err() != nil:
				return c.errClosed("get " + s.name)
			case errors.Is(r.err, registry.ErrUnavailable):
				state[r.idx] = 3
				errs = append(errs, fmt.Errorf("tier %s: %w", c.tiers[r.idx].name, r.err))
			default:
				return fmt.Errorf("chain: get %s: tier %s: %w", registry.Quote(s.name), c.tiers[r.idx].name, r.err)
			}
			// A tier that failed or said "empty" without authority: ask the
			// next at once rather than wait for the hedge.
			if state[r.idx] == 3 || len(data[r.idx].Instances) == 0 {
				askNext()
			}
		case <-hedge.C:
			if !snapTried {
				snapTried = true
				if s.serveSnapshotLoad() {
					return nil
				}
			}
			for i := range state {
				if state[i] == 1 {
					state[i] = 4 // waited for long enough: a lower tier may answer
				}
			}
			askNext()
			hedge.Reset(c.opts.hedgeDelay)
		case <-c.ctx.Done():
			return c.errClosed("get " + s.name)
		}
	}
}

// pick chooses the first view among the first reads: under FirstHealthy
// the first tier that answered with a state that counts while every tier
// above it failed or answered without one; under Merge the union of the
// answers once no read is outstanding.
func (s *service) pick(state []int, data []*registry.Update) (*registry.Update, uint64, bool) {
	s.mu.Lock()
	auth := s.auth | s.c.ownTiers(s.name)
	s.mu.Unlock()
	if s.c.opts.policy == Merge {
		var parts []int
		var mask uint64
		for i, st := range state {
			if st == 1 || st == 4 {
				return nil, 0, false
			}
			if st == 2 && (len(data[i].Instances) > 0 || auth&bit(i) != 0) {
				parts = append(parts, i)
				mask |= bit(i)
			}
		}
		if len(parts) == 0 {
			return nil, 0, false
		}
		tiers := make([]tierIn, len(data))
		for i := range data {
			tiers[i] = tierIn{name: s.c.tiers[i].name, data: data[i]}
		}
		if len(parts) == 1 {
			return data[parts[0]], mask, true
		}
		return mergeStates(s.name, tiers, parts), mask, true
	}
	for i, st := range state {
		switch st {
		case 0, 1:
			return nil, 0, false // not asked yet, or on its way: wait (the hedge bounds it)
		case 2:
			if len(data[i].Instances) > 0 || auth&bit(i) != 0 {
				return data[i], bit(i), true
			}
		}
	}
	return nil, 0, false
}

// serveSnapshotLoad serves the snapshot's state as the first view, if it
// holds one fresh enough. The tiers' watchers replace it when they answer.
func (s *service) serveSnapshotLoad() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.view.Load() != nil {
		return s.view.Load() != nil
	}
	now := time.Now()
	u := s.c.snap.peek(s.name, time.Time{})
	if u == nil || !s.c.snap.fresh(u, now) {
		return false
	}
	s.setViewLocked(u, 0, now)
	return true
}

// setLoaded makes a first read's state the view. A tier's watcher may
// have answered while the read was in flight: its state may be newer than
// the read's, and nothing would correct the read's then, so it is taken
// instead.
func (s *service) setLoaded(u *registry.Update, mask uint64, data []*registry.Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.view.Load() != nil {
		return nil
	}
	var parts []int
	newer := false
	for m := mask; m != 0; m &= m - 1 {
		i := lowest(m, len(s.c.tiers))
		parts = append(parts, i)
		if len(data[i].Instances) > 0 {
			s.auth |= bit(i)
		}
		if s.watchers[i] == nil {
			continue
		}
		if s.data[i] == nil {
			s.data[i] = data[i]
			continue
		}
		data[i], newer = s.data[i], true
	}
	if newer {
		if len(parts) == 1 {
			u = data[parts[0]]
		} else {
			tiers := make([]tierIn, len(data))
			for i := range data {
				tiers[i] = tierIn{name: s.c.tiers[i].name, data: data[i]}
			}
			u = mergeStates(s.name, tiers, parts)
		}
	}
	s.setViewLocked(u, mask, time.Now())
	return nil
}

// loadFallback ends a first read none of whose tiers had a state that
// counts: the snapshot if it holds the service, else the first empty
// answer (the service exists nowhere), else an error.
func (s *service) loadFallback(data []*registry.Update, errs []error) error {
	if s.serveSnapshotLoad() {
		return nil
	}
	for i, d := range data {
		if d != nil {
			return s.setLoaded(d, bit(i), data)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no tier"))
	}
	return fmt.Errorf("chain: get %s: %w: every tier failed and the snapshot does not hold it: %w", registry.Quote(s.name), registry.ErrUnavailable, errors.Join(errs...))
}
