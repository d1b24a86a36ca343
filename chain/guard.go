package chain

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

// hold is a suspect drop the empty-push guard keeps back until a re-read.
type hold struct {
	mask     uint64
	timer    *time.Timer
	attempts int
}

// isDrop reports whether next removes every instance of cur, or more than
// share of them.
func isDrop(cur, next []*registry.Instance, share float64) bool {
	if len(cur) == 0 {
		return false
	}
	if len(next) == 0 {
		return true
	}
	keep := make(map[string]struct{}, len(next))
	for _, in := range next {
		keep[in.ID] = struct{}{}
	}
	removed := 0
	for _, in := range cur {
		if _, ok := keep[in.ID]; !ok {
			removed++
		}
	}
	return float64(removed) > share*float64(len(cur))
}

// guardLocked decides whether the candidate is a suspect drop to hold; it
// returns true when the current view stays.
func (s *service) guardLocked(cur *view, cand *registry.Update, mask uint64, now time.Time) bool {
	c := s.c
	g := c.opts.guard
	if g.Disabled || cur == nil || mask == 0 || c.frozen.Load() || !isDrop(cur.u.Instances, cand.Instances, g.share()) {
		if s.hold != nil {
			s.dropHoldLocked(false)
		}
		return false
	}
	suspect := cur.mask != mask
	for m := mask; m != 0 && !suspect; m &= m - 1 {
		suspect = c.tiers[lowest(m, len(c.tiers))].recentlyChanged(now, g.window())
	}
	if !suspect {
		if s.hold != nil {
			s.dropHoldLocked(false)
		}
		return false
	}
	if s.hold == nil {
		h := &hold{}
		s.hold = h
		c.m.held.Add(1)
		c.log.Warn("chain: holding a suspect drop", "service", s.name, "from", cand.Source,
			"instances", len(cur.u.Instances), "to", len(cand.Instances), "grace", g.grace())
		s.armLocked(h, g.grace())
	}
	s.hold.mask = mask
	return true
}

// dropHoldLocked forgets the hold: the drop it held was superseded by a
// state that is not a suspect drop, so it was never served.
func (s *service) dropHoldLocked(confirmed bool) {
	s.hold.timer.Stop()
	s.hold = nil
	if !confirmed {
		s.c.m.discarded.Add(1)
		s.c.log.Info("chain: suspect drop superseded", "service", s.name)
	}
}

func (s *service) armLocked(h *hold, d time.Duration) {
	h.timer = time.AfterFunc(d, func() {
		s.c.spawn(func() { s.confirm(h) })
	})
}

// confirm re-reads the tiers a held drop came from and serves what they say
// now: the drop if they confirm it, the fresher state otherwise. A tier
// whose watcher delivered a state while the re-read was in flight keeps
// that state: it may be newer than the re-read's, and nothing would
// correct an older one.
func (s *service) confirm(h *hold) {
	c := s.c
	s.mu.Lock()
	if s.hold != h || s.closed {
		s.mu.Unlock()
		return
	}
	mask := h.mask
	before := slices.Clone(s.data)
	s.mu.Unlock()

	reread := make([]*registry.Update, len(c.tiers))
	var parts []int
	for m := mask; m != 0; m &= m - 1 {
		i := lowest(m, len(c.tiers))
		t := c.tiers[i]
		var got []*registry.Instance
		err := c.call(c.ctx, t, func(ctx context.Context) error {
			var err error
			got, err = t.reg.GetService(ctx, s.name)
			return err
		})
		if errors.Is(err, registry.ErrNotFound) {
			got, err = []*registry.Instance{}, nil
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if s.hold == h {
				h.attempts++
				c.log.Info("chain: re-read of a held drop failed", "service", s.name, "tier", t.name, "attempt", h.attempts, "error", err)
				s.armLocked(h, c.opts.guard.grace())
			}
			s.mu.Unlock()
			return
		}
		got = tidy(got)
		reread[i] = &registry.Update{Service: s.name, Instances: got, Source: t.name, Time: time.Now()}
		parts = append(parts, i)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != h || s.closed {
		return
	}
	if h.mask != mask {
		s.armLocked(h, 0) // the drop moved to other tiers meanwhile: re-read those
		return
	}
	for _, i := range parts {
		if s.watchers[i] != nil && (s.data[i] == nil || s.data[i] == before[i]) {
			s.data[i] = reread[i]
		}
	}
	now := time.Now()
	cand, cmask, ok := s.candidateLocked(now)
	if !ok || cmask != mask {
		// The tiers moved on during the re-read: judge the new candidate
		// afresh (it gets a hold, and a timer, of its own if suspect).
		s.dropHoldLocked(false)
		s.recomputeLocked(now)
		return
	}
	cur := s.view.Load()
	confirmed := cur != nil && isDrop(cur.u.Instances, cand.Instances, c.opts.guard.share())
	s.dropHoldLocked(true)
	if confirmed {
		c.m.confirmed.Add(1)
		c.log.Warn("chain: suspect drop confirmed", "service", s.name, "from", cand.Source, "instances", len(cand.Instances))
	} else {
		c.m.discarded.Add(1)
		c.log.Info("chain: suspect drop not confirmed by the re-read", "service", s.name, "from", cand.Source, "instances", len(cand.Instances))
	}
	if cur == nil || cur.mask != cmask || !cur.u.SameState(cand) {
		s.setViewLocked(cand, cmask, now)
	}
}
