package chain

import (
	"time"
)

// The loop sweeps the services (see "Memory" in the package
// documentation): idle ones go after WithIdleTimeout, absent ones (an
// empty view) after WithNegativeTTL. Forgotten services stay in the
// snapshot.

// sweep evicts the services that are idle or absent at now.
func (c *Chain) sweep(now time.Time) {
	c.allMu.Lock()
	watchAll := len(c.allFeeds) > 0
	c.allMu.Unlock()
	for _, s := range c.serviceList() {
		s.mu.Lock()
		if s.used.Swap(false) {
			s.lastUsed = now
		}
		v := s.cur.Load()
		absent := v == nil || len(v.u.Instances) == 0
		idle := now.Sub(s.lastUsed)
		evict := s.evictableLocked() && !(watchAll && !absent) &&
			((absent && idle >= c.opts.negTTL) || idle >= c.opts.idle)
		s.mu.Unlock()
		if !evict {
			continue
		}
		c.mu.Lock()
		if c.services[s.name] == s {
			delete(c.services, s.name)
		} else {
			s = nil
		}
		c.mu.Unlock()
		if s != nil {
			why := "idle"
			if absent {
				why = "absent"
			}
			c.evict(s, why)
		}
	}
}

// evictableLocked reports whether nothing keeps the service in memory: no
// watcher, no held drop, no rollback, no first read running.
func (s *service) evictableLocked() bool {
	return !s.closed && len(s.feeds) == 0 && s.hold == nil && !s.pinned && s.readyOK
}

// victimLocked picks the service the cap evicts: the least recently used
// one that is evictable. Called with c.mu held; services it cannot lock at
// once are passed over.
func (c *Chain) victimLocked() *service {
	var victim *service
	var oldest time.Time
	for _, s := range c.services {
		if !s.mu.TryLock() {
			continue
		}
		lu := s.lastUsed
		if s.used.Load() {
			lu = time.Now()
		}
		if s.evictableLocked() && (victim == nil || lu.Before(oldest)) {
			victim, oldest = s, lu
		}
		s.mu.Unlock()
	}
	return victim
}

// evict closes a service already removed from the chain's map. A watcher
// that slipped in meanwhile puts it back.
func (c *Chain) evict(s *service, why string) {
	s.mu.Lock()
	if len(s.feeds) > 0 || s.closed {
		s.mu.Unlock()
		c.mu.Lock()
		if !c.closed && c.services[s.name] == nil && !s.closed {
			c.services[s.name] = s
		}
		c.mu.Unlock()
		return
	}
	s.evicted = true
	s.closeLocked()
	s.mu.Unlock()
	c.m.evictions.Add(1)
	c.log.Debug("chain: service forgotten", "service", s.name, "why", why)
}
