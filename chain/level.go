package chain

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/regchain/regchain/registry"
)

// Level is the chain's degradation level, in the terms operators use. A
// higher level is worse; the chain is at the highest level whose condition
// holds (see the package documentation, "Degradation levels").
type Level int

const (
	// L0: every tier is up and every service is served live by a tier that
	// is not static.
	L0 Level = iota
	// L1: failed over. A tier is down (its services are served by a lower
	// tier), or a service is served from the snapshot (the chain is
	// frozen, a service is rolled back, or no tier can serve it).
	L1
	// L2: a service is served by a static tier (a hand-written list, see
	// WithStaticTiers).
	L2
	// L3: registrations cannot be written anywhere: the chain has writable
	// tiers and none of them is up. Serving continues.
	L3
)

// String returns "L0" to "L3".
func (l Level) String() string {
	if l < L0 || l > L3 {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return fmt.Sprintf("L%d", int(l))
}

// Meaning returns a short description of the level for people.
func (l Level) Meaning() string {
	switch l {
	case L0:
		return "all tiers healthy"
	case L1:
		return "failed over: a tier is down or serving from the snapshot"
	case L2:
		return "serving the static tier"
	case L3:
		return "registrations cannot be written anywhere (serving continues)"
	}
	return "unknown level"
}

// MarshalText encodes the level as "L0" to "L3".
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText decodes "L0" to "L3".
func (l *Level) UnmarshalText(b []byte) error {
	for v := L0; v <= L3; v++ {
		if string(b) == v.String() {
			*l = v
			return nil
		}
	}
	return fmt.Errorf("chain: unknown degradation level %s (want L0 to L3)", registry.Quote(string(b)))
}

// Degradation is the chain's degradation level with the reasons for it.
type Degradation struct {
	// Level is the highest level whose condition holds.
	Level Level
	// Reasons lists every condition that holds, worst first, for people
	// (e.g. "tier etcd is down", "2 services served from the snapshot").
	// Empty at L0.
	Reasons []string
	// Since is when Level last changed (zero: not since the chain started).
	Since time.Time
}

// levelState remembers the last level observed, to log and time changes.
type levelState struct {
	mu    sync.Mutex // guards the fields below
	level Level
	since time.Time
}

// staticTier reports whether the tier named name is a static tier.
func (c *Chain) staticTier(name string) bool {
	if name == "static" {
		return true
	}
	for _, s := range c.opts.ext.static {
		if s == name {
			return true
		}
	}
	return false
}

// Degradation computes the chain's degradation level now. A change from
// the level last computed is logged (a warning when worse) and timed
// (Degradation.Since); the chain computes it at every Status and at least
// every second, so a change is logged within a second.
func (c *Chain) Degradation() Degradation {
	var reasons3, reasons2, reasons1 []string
	writable, writableUp := 0, 0
	for _, t := range c.tiers {
		up := t.isUp()
		if !t.readOnly {
			writable++
			if up {
				writableUp++
			}
		}
		if !up {
			reasons1 = append(reasons1, fmt.Sprintf("tier %s is down", t.name))
		}
	}
	if writable > 0 && writableUp == 0 {
		reasons3 = append(reasons3, "no writable tier is up: registrations cannot be written")
	}
	fromSnap, fromStatic, tooOld := 0, 0, 0
	now := time.Now()
	for _, s := range c.serviceList() {
		v := s.cur.Load()
		if v == nil {
			continue
		}
		if v.expired(now) {
			tooOld++
			continue
		}
		if v.mask == 0 {
			fromSnap++
			continue
		}
		for src := range strings.SplitSeq(v.u.Source, "+") {
			if c.staticTier(src) {
				fromStatic++
				break
			}
		}
	}
	if c.frozen.Load() {
		reasons1 = append([]string{"frozen: serving the last known good states"}, reasons1...)
	}
	if fromSnap > 0 {
		reasons1 = append(reasons1, plural(fromSnap, "service")+" served from the snapshot")
	}
	if tooOld > 0 {
		reasons1 = append(reasons1, plural(tooOld, "service")+" not served: no tier can serve it and its snapshot state is older than the max age")
	}
	if fromStatic > 0 {
		reasons2 = append(reasons2, plural(fromStatic, "service")+" served from a static tier")
	}
	d := Degradation{Level: L0}
	switch {
	case len(reasons3) > 0:
		d.Level = L3
	case len(reasons2) > 0:
		d.Level = L2
	case len(reasons1) > 0:
		d.Level = L1
	}
	d.Reasons = append(append(append(d.Reasons, reasons3...), reasons2...), reasons1...)
	d.Since = c.noteLevel(d)
	return d
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// noteLevel records d's level and returns since when it holds, logging a
// change.
func (c *Chain) noteLevel(d Degradation) time.Time {
	l := &c.ext.level
	l.mu.Lock()
	defer l.mu.Unlock()
	if d.Level == l.level {
		return l.since
	}
	from := l.level
	l.level, l.since = d.Level, time.Now()
	args := []any{"from", from.String(), "to", d.Level.String(), "meaning", d.Level.Meaning(), "reasons", d.Reasons}
	if d.Level > from {
		c.log.Warn("chain: degradation level changed", args...)
	} else {
		c.log.Info("chain: degradation level changed", args...)
	}
	return l.since
}

// extState is the state of the operator features and the latency
// histograms.
type extState struct {
	level levelState
	// switchOn is whether the switch file existed at the last poll; it is
	// only touched by the ops loop.
	switchOn bool
}

// levelInterval is how often the ops loop computes the degradation level,
// so that a change is logged and exported even when nobody asks.
const levelInterval = time.Second
