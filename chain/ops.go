package chain

import (
	"fmt"
	"time"

	"github.com/regchain/regchain/registry"
)

// Freeze switches the chain to serve only the snapshot (on) or back to the
// tiers (off), for registry maintenance or an incident. While frozen, every
// service is served its last known good state (the last non-empty state the
// chain accepted or loaded from the store, even if an empty one was
// accepted since) with Source "snapshot"; services it never saw are not
// found. Writes still
// go to the tiers, and the snapshot is not updated. The switch is in effect
// for every read made once Freeze returns.
func (c *Chain) Freeze(on bool) {
	if c.frozen.Swap(on) == on {
		return
	}
	c.log.Warn("chain: freeze switched", "frozen", on)
	// Reconciled here rather than by the control loop, so that reads made
	// once Freeze returns see the switch.
	c.reconcileAll()
}

// Frozen reports whether the chain is frozen.
func (c *Chain) Frozen() bool { return c.frozen.Load() }

// ReleaseHold lets the service's held drop through at once (the operator
// knows the removal is real), and ends a Rollback of the service. It
// returns an error wrapping registry.ErrNotFound when the service has
// neither.
func (c *Chain) ReleaseHold(name string) error {
	c.mu.RLock()
	s := c.services[name]
	c.mu.RUnlock()
	if s == nil {
		return fmt.Errorf("chain: release %s: %w: no held drop or rollback", registry.Quote(name), registry.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.hold == nil && !s.pinned) {
		return fmt.Errorf("chain: release %s: %w: no held drop or rollback", registry.Quote(name), registry.ErrNotFound)
	}
	if s.pinned {
		s.pinned = false
		c.log.Warn("chain: rollback released by the operator", "service", name)
	}
	s.recomputeLocked(time.Now(), false, true)
	return nil
}

// Rollback serves the service its last known good state (Source
// "snapshot") at once, whatever the tiers say, until ReleaseHold or until a
// tier delivers a state that is not a drop from it. It returns an error
// wrapping registry.ErrNotFound when the chain has no last known good
// state of the service, and registry.ErrInvalid for an invalid name.
func (c *Chain) Rollback(name string) error {
	if err := registry.ValidateName(name); err != nil {
		return err
	}
	if c.snap.good(name) == nil {
		return fmt.Errorf("chain: rollback %s: %w: no last known good state", registry.Quote(name), registry.ErrNotFound)
	}
	for {
		s, err := c.service(name)
		if err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			evicted := s.evicted
			s.mu.Unlock()
			if evicted {
				continue
			}
			return c.errClosed("rollback " + name)
		}
		s.pinned = true
		c.m.rollbacks.Add(1)
		c.log.Warn("chain: rolled back to the last known good state by the operator", "service", name)
		s.recomputeLocked(time.Now(), false, false)
		s.mu.Unlock()
		return nil
	}
}
