package admin

import (
	"fmt"
	"time"

	"github.com/regchain/regchain/chain"
)

// Rules configure readiness (see the package documentation, "Readiness
// rules"). The zero Rules: ready unless the chain is at level L3.
type Rules struct {
	// UnreadyAt is the degradation level at and above which the process is
	// not ready. If zero, chain.L3.
	UnreadyAt chain.Level
	// IgnoreLevel drops the level rule.
	IgnoreLevel bool
	// Registrations requires every instance the chain keeps registered to
	// be held by at least one tier.
	Registrations bool
	// Services must each be served: live by a tier that is up, or stale but
	// younger than MaxStale.
	Services []string
	// MaxStale is the oldest a stale state of one of Services may be. If
	// zero, any age.
	MaxStale time.Duration
	// Check, when set, is one more rule: a non-nil error makes the process
	// not ready, with the error as the reason.
	Check func(chain.Status) error
}

// check returns the rules that fail, as reasons for people; none: ready.
// held maps each own registration (Instance.Key) to the tiers holding it.
func (r Rules) check(st chain.Status, held map[string][]string) []string {
	var out []string
	if !r.IgnoreLevel {
		at := r.UnreadyAt
		if at == chain.L0 {
			at = chain.L3
		}
		if st.Degradation.Level >= at {
			out = append(out, fmt.Sprintf("level %v (%s), not ready at %v or above", st.Degradation.Level, st.Degradation.Level.Meaning(), at))
		}
	}
	if r.Registrations {
		for _, g := range st.Registrations {
			if len(held[g.Instance.Key()]) == 0 {
				out = append(out, fmt.Sprintf("registration %s is held by no tier", g.Instance.Key()))
			}
		}
	}
	for _, name := range r.Services {
		i := -1
		for j, s := range st.Services {
			if s.Name == name {
				i = j
				break
			}
		}
		switch {
		case i < 0:
			out = append(out, fmt.Sprintf("service %s is not served (never read or watched)", name))
		case !st.Services[i].Stale:
		case r.MaxStale > 0 && st.Services[i].Age > r.MaxStale:
			s := st.Services[i]
			out = append(out, fmt.Sprintf("service %s is served stale from %s, %v old (more than %v)", name, s.Source, s.Age.Round(time.Millisecond), r.MaxStale))
		}
	}
	if r.Check != nil {
		if err := r.Check(st); err != nil {
			out = append(out, err.Error())
		}
	}
	return out
}
