package chain

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regchain/regchain/registry"
)

// Registrations implements registry.RegistrationReporter: one entry per
// instance the chain keeps registered. It is Live when every writable tier
// holds it: for a tier that implements registry.RegistrationReporter, by
// that tier's own report (a lease or session lost underneath shows); for
// the others, by the tier having accepted the write and being up. A tier
// that rejected the instance as invalid does not hold it. When not Live,
// Attempts and LastError come from the tier that lags most. Since is when
// Live last changed, as the chain observed it (at each call and at least
// every WithNegativeTTL/2).
func (c *Chain) Registrations() []registry.RegistrationState {
	reports := make([]map[string]registry.RegistrationState, len(c.tiers))
	for i, t := range c.tiers {
		if t.readOnly {
			continue
		}
		if rr, ok := t.reg.(registry.RegistrationReporter); ok {
			m := make(map[string]registry.RegistrationState)
			for _, st := range rr.Registrations() {
				if st.Instance != nil {
					m[st.Instance.Key()] = st
				}
			}
			reports[i] = m
		}
	}
	now := time.Now()
	c.regMu.Lock()
	defer c.regMu.Unlock()
	var out []registry.RegistrationState
	for _, r := range c.regs {
		if !r.live {
			continue
		}
		st := registry.RegistrationState{Instance: r.inst.Clone(), Live: true}
		rejected := false
		lag := func(attempts int, err error) {
			st.Live = false
			if attempts >= st.Attempts {
				st.Attempts = attempts
				if !rejected {
					st.LastError = err
				}
			}
		}
		for i, rt := range r.tiers {
			if rt == nil {
				continue
			}
			t := c.tiers[i]
			switch {
			case rt.doneGen == r.gen && rt.rejected:
				st.Live = false
				if !rejected {
					rejected, st.LastError = true, rt.lastErr
				}
			case rt.doneGen != r.gen:
				lag(rt.attempts, rt.lastErr)
			case reports[i] != nil:
				ts, ok := reports[i][r.key]
				switch {
				case !ok:
					lag(0, fmt.Errorf("chain: tier %s does not report the registration", t.name))
				case !ts.Live:
					lag(ts.Attempts, ts.LastError)
				}
			case !t.isUp():
				lag(0, fmt.Errorf("chain: tier %s is down", t.name))
			}
		}
		if r.liveSince.IsZero() || st.Live != r.isLive {
			r.isLive, r.liveSince = st.Live, now
			if st.Live && r.since.After(now) {
				r.liveSince = r.since
			}
		}
		st.Since = r.liveSince
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b registry.RegistrationState) int {
		if c := strings.Compare(a.Instance.Name, b.Instance.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Instance.ID, b.Instance.ID)
	})
	return out
}

// ownTiers returns the writable tiers when the chain keeps one of its own
// registrations of the service: they are authorities for its absence.
func (c *Chain) ownTiers(name string) uint64 {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	for _, r := range c.regs {
		if r.live && r.inst.Name == name {
			var mask uint64
			for i, rt := range r.tiers {
				if rt != nil {
					mask |= bit(i)
				}
			}
			return mask
		}
	}
	return 0
}

// healOwn notices a tier state that lacks one of the chain's own live
// registrations the tier had accepted (the tier lost it: a restart with
// its data gone, an operator's delete, a tier without keepalives) and has
// it written again. A state older than the write (a lagging watch) costs
// one idempotent rewrite.
func (c *Chain) healOwn(t *tier, name string, ins []*registry.Instance) {
	if t.readOnly {
		return
	}
	c.regMu.Lock()
	n := 0
	for _, r := range c.regs {
		if !r.live || r.inst.Name != name {
			continue
		}
		rt := r.tiers[t.idx]
		if rt == nil || rt.doneGen != r.gen || rt.rejected {
			continue
		}
		if !slices.ContainsFunc(ins, func(in *registry.Instance) bool { return in.ID == r.inst.ID }) {
			rt.doneGen = 0
			n++
		}
	}
	c.regMu.Unlock()
	if n > 0 {
		c.log.Warn("chain: a tier lost registrations of this process; writing them again", "tier", t.name, "service", name, "count", n)
		t.wakeReplay()
	}
}

// hideGone returns ins without the instances the chain deregistered and
// has not registered again, while their deregistration is pending in some
// tier or was made less than twice the guard window ago: a tier that has
// not applied it yet (it was down, its replay is pending, its watch lags)
// must not bring them back. ins is not modified.
func (c *Chain) hideGone(name string, ins []*registry.Instance) []*registry.Instance {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if len(c.gone) == 0 {
		return ins
	}
	var out []*registry.Instance
	for i, in := range ins {
		if c.goneLocked2(name + "/" + in.ID) {
			if out == nil {
				out = append(make([]*registry.Instance, 0, len(ins)), ins[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, in)
		}
	}
	if out == nil {
		return ins
	}
	return out
}

// hideGoneState is hideGone for a state: u itself when nothing is hidden,
// else a copy without the hidden instances.
func (c *Chain) hideGoneState(u *registry.Update) *registry.Update {
	if u == nil {
		return nil
	}
	ins := c.hideGone(u.Service, u.Instances)
	if len(ins) == len(u.Instances) {
		return u
	}
	cp := *u
	cp.Instances = ins
	return &cp
}

// goneLocked2 reports whether key is hidden (see hideGone).
func (c *Chain) goneLocked2(key string) bool {
	at, ok := c.gone[key]
	if !ok {
		return false
	}
	if r := c.regs[key]; r != nil {
		return !r.live
	}
	return time.Since(at) < 2*c.opts.guard.window()
}

// ownServices returns the names of the services the chain keeps live
// registrations of.
func (c *Chain) ownServices() []string {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	var out []string
	for _, r := range c.regs {
		if r.live && !slices.Contains(out, r.inst.Name) {
			out = append(out, r.inst.Name)
		}
	}
	return out
}

// ownRemovedIDs returns the IDs of the service's instances the chain
// itself deregistered recently (within twice the guard window at now):
// their removal is not a drop. Nil when there are none.
func (c *Chain) ownRemovedIDs(name string, now time.Time) map[string]bool {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	var out map[string]bool
	prefix := name + "/"
	for key, at := range c.gone {
		if id, ok := strings.CutPrefix(key, prefix); ok && now.Sub(at) < 2*c.opts.guard.window() {
			if out == nil {
				out = make(map[string]bool)
			}
			out[id] = true
		}
	}
	return out
}
