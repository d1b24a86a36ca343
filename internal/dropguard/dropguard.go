// Package dropguard holds the empty-push protection's rules that the chain
// (chain.Guard, rule 5 of its package documentation) and the mirror share:
// what counts as a drop, the guard's defaults, and when a held drop is
// confirmed. Each user keeps its own held drops and re-reads; the rules are
// here so that both judge alike.
package dropguard

import (
	"time"

	"github.com/regchain/regchain/registry"
)

// Settings are a guard's settings, field for field chain.Guard's (which
// converts to Settings); the methods apply the defaults.
type Settings struct {
	Disabled      bool
	MaxDropShare  float64
	Window        time.Duration
	Confirmations int
}

// Defaults.
const (
	DefaultMaxDropShare  = 0.5
	DefaultWindow        = time.Minute
	DefaultConfirmations = 4
)

// Share is the share of instances one state may remove before it counts as
// a drop.
func (s Settings) Share() float64 {
	if s.MaxDropShare > 0 {
		return s.MaxDropShare
	}
	return DefaultMaxDropShare
}

// HoldWindow is the least time a drop is held.
func (s Settings) HoldWindow() time.Duration {
	if s.Window > 0 {
		return s.Window
	}
	return DefaultWindow
}

// Reads is how many confirming re-reads, each still a drop, confirm a
// held drop.
func (s Settings) Reads() int {
	if s.Confirmations > 0 {
		return s.Confirmations
	}
	return DefaultConfirmations
}

// Interval is the time between two confirming re-reads.
func (s Settings) Interval() time.Duration {
	return s.HoldWindow() / time.Duration(s.Reads())
}

// Confirmed reports whether a drop held since since, re-read reads times
// (each still a drop), is confirmed at now: enough reads over the whole
// window.
func (s Settings) Confirmed(reads int, since, now time.Time) bool {
	return reads >= s.Reads() && now.Sub(since) >= s.HoldWindow()
}

// IsDrop reports whether next has fewer than 1-share times as many
// instances as cur (none at all included). It counts instances, not
// identities: a rolling replacement (new IDs for old) is no drop, a mass
// removal is. Instances of cur missing from next that own reports (the
// caller's own deregistrations) are left out of cur's count; own may be
// nil.
func IsDrop(cur, next []*registry.Instance, share float64, own func(string) bool) bool {
	base := len(cur)
	if own != nil && base > 0 {
		keep := make(map[string]struct{}, len(next))
		for _, in := range next {
			keep[in.ID] = struct{}{}
		}
		for _, in := range cur {
			if _, ok := keep[in.ID]; !ok && own(in.ID) {
				base--
			}
		}
	}
	if base <= 0 {
		return false
	}
	if len(next) == 0 {
		return true
	}
	return float64(base-len(next)) > share*float64(base)
}
