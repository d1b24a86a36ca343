package locality

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

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
	lvl, sel, _ := choose(self, th.normalized(), cur, ins)
	return lvl, sel
}

// counts are the instances per level at one read: what Select judged.
type counts struct {
	zone, region, total int
}

// choose is Select with the counts it judged by. th is normalized.
func choose(self Locality, th Thresholds, cur Level, ins []*registry.Instance) (Level, []*registry.Instance, counts) {
	n := counts{total: len(ins)}
	if n.total == 0 {
		// Nothing to judge the levels by: keep the current one, so that a
		// service that is briefly empty (or not yet known) does not count
		// as a fall-over.
		return cur, ins, n
	}
	for _, in := range ins {
		if self.has(LevelZone) && self.Matches(LevelZone, in) {
			n.zone++
		}
		if self.has(LevelRegion) && self.Matches(LevelRegion, in) {
			n.region++
		}
	}
	for l, c := range []int{n.zone, n.region} {
		lvl := Level(l)
		if self.has(lvl) && th.qualifies(lvl, cur, c, n.total) {
			return lvl, filter(self, lvl, ins), n
		}
	}
	out := make([]*registry.Instance, len(ins))
	copy(out, ins)
	return LevelAny, out, n
}

// qualifies reports whether level l, holding n of total instances, is
// chosen when the service is at cur: a nearer level must have recovered, the
// current or a farther one must be healthy enough to stay.
func (t Thresholds) qualifies(l, cur Level, n, total int) bool {
	count, share := t.need(l, cur)
	return n >= count && float64(n)/float64(total) >= share
}

// need returns the count and share level l needs when the service is at cur.
func (t Thresholds) need(l, cur Level) (int, float64) {
	if l < cur {
		return t.RecoverCount, t.RecoverShare
	}
	return t.MinCount, t.MinShare
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
	return l.contains(lvl, Of(in))
}

// Nearest returns the nearest level o belongs to as seen from l: LevelZone
// for l's zone, LevelRegion for the rest of l's region, LevelAny for
// anywhere else (an unknown o included). Balancers that order endpoints by
// locality (package grpcbalancer) use it.
func (l Locality) Nearest(o Locality) Level {
	for lvl := LevelZone; lvl < LevelAny; lvl++ {
		if l.contains(lvl, o) {
			return lvl
		}
	}
	return LevelAny
}

// contains reports whether level lvl, as seen from l, holds place o.
func (l Locality) contains(lvl Level, o Locality) bool {
	switch lvl {
	case LevelZone:
		if l.Zone == "" || o.Zone != l.Zone {
			return false
		}
		return l.Region == "" || o.Region == "" || o.Region == l.Region
	case LevelRegion:
		// The region level includes the zone's, even instances of the zone
		// that carry no region.
		return l.Region != "" && (o.Region == l.Region || l.contains(LevelZone, o))
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
	th   Thresholds // normalized

	mu     sync.Mutex             // guards levels
	levels map[string]*levelState // per service; absent: LevelZone, never read
}

// levelState is what the selector remembers of one service.
type levelState struct {
	level Level
	prev  Level // the level the last read started from
	n     counts
	since time.Time
}

// NewSelector returns a selector for a reader at self.
func NewSelector(self Locality, th Thresholds) *Selector {
	return &Selector{self: self, th: th.normalized(), levels: make(map[string]*levelState)}
}

// Select picks the instances of service to use out of its complete set ins
// and remembers the level for the next call.
func (s *Selector) Select(service string, ins []*registry.Instance) []*registry.Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.levels[service]
	if st == nil {
		st = &levelState{}
		s.levels[service] = st
	}
	lvl, out, n := choose(s.self, s.th, st.level, ins)
	if lvl != st.level || st.since.IsZero() {
		st.since = time.Now()
	}
	st.prev, st.level, st.n = st.level, lvl, n
	return out
}

// Level returns the current level of service (LevelZone before its first
// read).
func (s *Selector) Level(service string) Level {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.levels[service]; st != nil {
		return st.level
	}
	return LevelZone
}

// State returns the current level of service and why.
func (s *Selector) State(service string) LevelState {
	s.mu.Lock()
	st := s.levels[service]
	var c levelState
	if st != nil {
		c = *st
	}
	s.mu.Unlock()
	out := LevelState{Level: c.level, Zone: c.n.zone, Region: c.n.region, Total: c.n.total, Since: c.since}
	out.Reason = s.reason(st != nil, c)
	return out
}

// LevelState is the level of one service's reads, and why.
type LevelState struct {
	// Level is the level reads of the service return (LevelZone before the
	// first read).
	Level Level
	// Reason says why, in words: which level held how many instances
	// against which threshold, e.g. `zone "eu-1a" has 0 of 4 instances,
	// needs 1 to stay; region "eu-1" has 2 of 4, needs 1 to stay`.
	Reason string
	// Zone, Region and Total count the instances of the zone level, of the
	// region level (the zone's included) and of the whole service at the
	// last read that found any (0 for a level the reader has no place in).
	Zone, Region, Total int
	// Since is when Level was first set or last changed; zero before the
	// first read.
	Since time.Time
}

// reason explains c in words.
func (s *Selector) reason(read bool, c levelState) string {
	switch {
	case !read:
		return "not read yet"
	case c.n.total == 0:
		return "no instances at the last read: level kept"
	case !s.self.has(LevelZone) && !s.self.has(LevelRegion):
		return "the reader has no zone and no region: every instance"
	}
	var parts []string
	for l := LevelZone; l < LevelAny; l++ {
		if !s.self.has(l) {
			parts = append(parts, "no "+l.String()+" configured")
			continue
		}
		name, n := s.self.Zone, c.n.zone
		if l == LevelRegion {
			name, n = s.self.Region, c.n.region
		}
		count, share := s.th.need(l, c.prev)
		verb := "to stay"
		if l < c.prev {
			verb = "to come back"
		}
		need := strconv.Itoa(count)
		if share > 0 {
			need += fmt.Sprintf(" and %.0f%% of the service", share*100)
		}
		parts = append(parts, fmt.Sprintf("%s %q has %d of %d instances, needs %s %s", l, name, n, c.n.total, need, verb))
		if l == c.level {
			break
		}
	}
	if c.level == LevelAny {
		parts = append(parts, "so every instance")
	}
	return strings.Join(parts, "; ")
}
