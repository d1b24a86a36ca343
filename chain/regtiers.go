package chain

import "github.com/regchain/regchain/registry"

// RegistrationTiers returns, per instance the chain keeps registered (its
// registry.Instance.Key), the writable tiers that hold it now: tiers that
// are up and accepted its latest registration, and, where the tier is a
// registry.RegistrationReporter, report it Live. An instance no tier holds
// maps to an empty list: its registration is written nowhere.
func (c *Chain) RegistrationTiers() map[string][]string {
	reports := make([]map[string]bool, len(c.tiers))
	for i, t := range c.tiers {
		if rr, ok := t.reg.(registry.RegistrationReporter); ok && !t.readOnly {
			m := make(map[string]bool)
			for _, st := range rr.Registrations() {
				if st.Instance != nil {
					m[st.Instance.Key()] = st.Live
				}
			}
			reports[i] = m
		}
	}
	c.regMu.Lock()
	defer c.regMu.Unlock()
	out := make(map[string][]string)
	for _, r := range c.regs {
		if !r.live {
			continue
		}
		held := []string{}
		for i, rt := range r.tiers {
			t := c.tiers[i]
			if rt == nil || rt.doneGen != r.gen || rt.rejected || !t.isUp() {
				continue
			}
			if reports[i] != nil && !reports[i][r.key] {
				continue
			}
			held = append(held, t.name)
		}
		out[r.key] = held
	}
	return out
}
