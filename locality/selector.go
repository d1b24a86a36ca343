package locality

import (
	"sync"

	"github.com/regchain/regchain/registry"
)

// Level is how near the selected instances are to the reader.
type Level int

// Levels, nearest first.
const (
	LevelZone Level = iota
	LevelRegion
	LevelAny
)

// String returns "zone", "region" or "any".
func (l Level) String() string {
	switch l {
	case LevelZone:
		return "zone"
	case LevelRegion:
		return "region"
	default:
		return "any"
	}
}

// Thresholds decide when a level is left and when it is re-entered; see
// the package doc. The zero value is usable: leave a level when it is
// empty, come back when it has an instance.
type Thresholds struct {
	// MinCount: a level with fewer instances is left. If zero, 1.
	MinCount int
	// MinShare: a level with a smaller share of the service's instances
	// (0..1) is left. If zero, no share condition.
	MinShare float64
	// RecoverCount: a nearer level is re-entered only with at least this
	// many instances. If below MinCount, MinCount.
	RecoverCount int
	// RecoverShare: a nearer level is re-entered only with at least this
	// share of the service. If below MinShare, MinShare.
	RecoverShare float64
}

func (t Thresholds) normalized() Thresholds {
	if t.MinCount < 1 {
		t.MinCount = 1
	}
	if t.RecoverCount < t.MinCount {
		t.RecoverCount = t.MinCount
	}
	if t.RecoverShare < t.MinShare {
		t.RecoverShare = t.MinShare
	}
	return t
}

// Select is the selector as a pure function: given the reader's place, the
// thresholds, the service's current level and its complete instance set, it
// returns the new level and the instances of that level (a new slice
// sharing ins' elements, in ins' order). An empty ins keeps cur. See the
// package doc for the rule.
func Select(self Locality, th Thresholds, cur Level, ins []*registry.Instance) (Level, []*registry.Instance) {
	th = th.normalized()
	total := len(ins)
	if total == 0 {
		// Nothing to judge the levels by: keep the current one, so that a
		// service that is briefly empty (or not yet known) does not count
		// as a fall-over.
		return cur, ins
	}
	for lvl := LevelZone; lvl < LevelAny; lvl++ {
		if !self.has(lvl) {
			continue
		}
		sel := filter(self, lvl, ins)
		n := len(sel)
		share := 0.0
		if total > 0 {
			share = float64(n) / float64(total)
		}
		ok := false
		if lvl < cur {
			ok = n >= th.RecoverCount && share >= th.RecoverShare
		} else {
			ok = n >= th.MinCount && share >= th.MinShare
		}
		if ok {
			return lvl, sel
		}
	}
	out := make([]*registry.Instance, len(ins))
	copy(out, ins)
	return LevelAny, out
}

func (l Locality) has(lvl Level) bool {
	switch lvl {
	case LevelZone:
		return l.Zone != ""
	case LevelRegion:
		return l.Region != ""
	default:
		return true
	}
}

// Matches reports whether in belongs to level lvl as seen from l.
func (l Locality) Matches(lvl Level, in *registry.Instance) bool {
	o := Of(in)
	switch lvl {
	case LevelZone:
		if l.Zone == "" || o.Zone != l.Zone {
			return false
		}
		return l.Region == "" || o.Region == "" || o.Region == l.Region
	case LevelRegion:
		return l.Region != "" && o.Region == l.Region
	default:
		return true
	}
}

func filter(self Locality, lvl Level, ins []*registry.Instance) []*registry.Instance {
	var out []*registry.Instance
	for _, in := range ins {
		if self.Matches(lvl, in) {
			out = append(out, in)
		}
	}
	return out
}

// Selector applies Select with a remembered level per service. It is safe
// for concurrent use.
type Selector struct {
	self Locality
	th   Thresholds

	mu     sync.Mutex       // guards levels
	levels map[string]Level // current level per service; absent: LevelZone
}

// NewSelector returns a selector for a reader at self.
func NewSelector(self Locality, th Thresholds) *Selector {
	return &Selector{self: self, th: th, levels: make(map[string]Level)}
}

// Select picks the instances of service to use out of its complete set ins
// and remembers the level for the next call.
func (s *Selector) Select(service string, ins []*registry.Instance) []*registry.Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	lvl, out := Select(s.self, s.th, s.levels[service], ins)
	s.levels[service] = lvl
	return out
}

// Level returns the current level of service (LevelZone before its first
// read).
func (s *Selector) Level(service string) Level {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.levels[service]
}
