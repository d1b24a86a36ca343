package chain

import "time"

// loop is the chain's one resident goroutine. It reads the tiers' watchers
// (the pump), reconciles every service after a health change or a freeze,
// sweeps the services nobody needs, computes the degradation level, looks
// for the switch file, and starts what calls a tier or the store — a
// tier's probe, a tier's replay, a snapshot save — on a goroutine of its
// own while it runs, so that an idle chain costs one goroutine whatever
// its number of tiers. Everything it runs inline must not block.
//
// Anything that wants a turn sets what it wants and calls kickLoop; the
// loop then looks at everything that is due.
func (c *Chain) loop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		case <-timer.C:
		}
		next := c.turn(time.Now())
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

// loopState is what the loop keeps between turns; only the loop touches
// it, except where a field says otherwise.
type loopState struct {
	controlAt                             time.Time // the last reconciliation
	sweepAt, levelAt, switchAt, refreshAt time.Time // the next sweep, level, switch file poll, confirmation
}

// turn does what is due at now and returns when the next thing falls due
// (zero: only when kicked).
func (c *Chain) turn(now time.Time) time.Time {
	ls := &c.ls
	var next time.Time
	due := func(at time.Time) bool {
		if !at.After(now) {
			return true
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
		return false
	}

	c.pump.drain(c)

	// Control: after a health change, a freeze, and when a recovered tier
	// becomes stable enough for failback.
	reconcile := c.controlDue.Swap(false)
	for _, t := range c.tiers {
		if at, ok := t.stableAt(); ok && at.After(c.ls.controlAt) && due(at) {
			reconcile = true
		}
	}
	if reconcile {
		ls.controlAt = now
		c.reconcileAll()
	}

	for _, t := range c.tiers {
		if !t.probeBusy.Load() && due(time.Unix(0, t.probeAt.Load())) {
			t.probeBusy.Store(true)
			if !c.spawn(t.probeOnce) {
				t.probeBusy.Store(false)
			}
		}
		if !t.readOnly && t.isUp() && !t.replayBusy.Load() &&
			(t.replayWake.Load() || (t.replayAt.Load() != 0 && due(time.Unix(0, t.replayAt.Load())))) {
			t.replayWake.Store(false)
			t.replayAt.Store(0)
			t.replayBusy.Store(true)
			if !c.spawn(t.replayOnce) {
				t.replayBusy.Store(false)
			}
		}
	}

	if due(ls.sweepAt) {
		every := max(min(c.opts.negTTL, c.opts.idle)/2, 10*time.Millisecond)
		ls.sweepAt = now.Add(every)
		next = minTime(next, ls.sweepAt)
		c.sweep(now)
		c.Registrations() // notices Live changes, for Since
	}
	if due(ls.levelAt) {
		ls.levelAt = now.Add(levelInterval)
		next = minTime(next, ls.levelAt)
		c.Degradation()
	}
	if c.opts.ext.switchFile != "" && due(ls.switchAt) {
		every := c.opts.ext.switchEvery
		if every <= 0 {
			every = time.Second
		}
		ls.switchAt = now.Add(every)
		next = minTime(next, ls.switchAt)
		c.pollSwitchFile()
	}
	if c.snap.store != nil {
		if due(ls.refreshAt) {
			if !ls.refreshAt.IsZero() {
				c.confirmServed(now)
			}
			ls.refreshAt = now.Add(c.opts.refresh)
			next = minTime(next, ls.refreshAt)
		}
		if c.snap.dirtyAny() && !c.snap.saving.Load() && due(time.Unix(0, c.snap.flushAt.Load())) {
			c.snap.saving.Store(true)
			if !c.spawn(c.snap.save1) {
				c.snap.saving.Store(false)
			}
		}
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
