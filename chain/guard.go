package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

// armRereadLocked schedules the next confirming re-read of the held drop
// in d.
func (s *service) armRereadLocked(d time.Duration) {
	if s.holdT != nil {
		s.holdT.Stop()
	}
	gen := s.holdGen
	s.holdT = time.AfterFunc(d, func() {
		s.c.spawn(func() { s.reread(gen) })
	})
}

// reread re-reads the tiers a held drop came from and hands the states to
// decide as a confirming read. A tier whose watcher delivered a state
// while the re-read was in flight keeps that state: it may be newer than
// the re-read's, and nothing would correct an older one.
func (s *service) reread(gen uint64) {
	c := s.c
	s.mu.Lock()
	if s.closed || s.hold == nil || s.holdGen != gen {
		s.mu.Unlock()
		return
	}
	mask := s.hold.mask
	before := slices.Clone(s.data)
	s.mu.Unlock()

	got := make([]*registry.Update, len(c.tiers))
	var failed error
	for m := mask; m != 0; m &= m - 1 {
		i := lowest(m, len(c.tiers))
		u, err := c.readTier(c.ctx, c.tiers[i], s.name)
		if err != nil {
			failed = err
			break
		}
		got[i] = u
	}
	if c.ctx.Err() != nil {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.hold == nil || s.holdGen != gen {
		return
	}
	if failed != nil {
		c.log.Info("chain: re-read of a held drop failed; retrying", "service", s.name, "error", failed)
		s.armRereadLocked(c.opts.guard.interval())
		return
	}
	for i, u := range got {
		if u != nil && s.watchers[i] != nil && (s.data[i] == nil || s.data[i] == before[i]) {
			s.data[i] = u
			if len(u.Instances) > 0 {
				s.auth |= bit(i)
			}
		}
	}
	s.holdT = nil
	s.recomputeLocked(time.Now(), true, false)
	if s.hold != nil && s.holdGen == gen && s.holdT == nil {
		s.armRereadLocked(c.opts.guard.interval())
	}
}

// readTier reads one service from one tier for the chain's own account (a
// first read or a re-read), bounded by the call timeout. ErrNotFound is an
// empty state. A read that only ran out of time says nothing about the
// tier's health (a slow answer is not a failure); an ErrUnavailable does.
func (c *Chain) readTier(ctx context.Context, t *tier, name string) (*registry.Update, error) {
	cctx, cancel := context.WithTimeoutCause(ctx, c.opts.callTimeout, errCallTimeout)
	defer cancel()
	start := time.Now()
	got, err := t.reg.GetService(cctx, name)
	c.m.lat.observe(c.m.lat.read, t.name, start, ignoreNotFound(err))
	switch {
	case err == nil:
		t.report(nil, false)
	case errors.Is(err, registry.ErrNotFound):
		t.report(nil, false)
		got, err = nil, nil
	case ctx.Err() != nil:
		return nil, err // the caller gave up: not the tier's fault
	case context.Cause(cctx) == errCallTimeout:
		return nil, fmt.Errorf("%w: %w: %w", registry.ErrUnavailable, errCallTimeout, err)
	default:
		t.report(err, false)
		return nil, err
	}
	return &registry.Update{Service: name, Instances: c.hideGone(name, tidy(got)), Source: t.name, Time: time.Now()}, nil
}
