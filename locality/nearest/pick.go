package nearest

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/regchain/regchain/locality"
)

// LevelOf returns the level of an instance with metadata md relative to a
// client at self (rule 1): the nearest of locality.LevelZone,
// locality.LevelRegion and locality.LevelAny the instance belongs to. It
// is self.Nearest of the place md names (locality.KeyZone,
// locality.KeyRegion); a door that has the place rather than the metadata
// (grpcbalancer) calls Nearest itself.
func LevelOf(self locality.Locality, md map[string]string) locality.Level {
	return self.Nearest(locality.Locality{Zone: md[locality.KeyZone], Region: md[locality.KeyRegion]})
}

// Pick returns the candidates a call may go to now (rule 3), in their
// order, and their level: the available ones of the nearest level that
// has any. at gives a candidate's level and Endpoint (a nil Endpoint is
// never ejected); tried is the call's record of the endpoints it already
// tried, or nil. When no candidate is available, Pick returns the
// non-ejected candidates of the nearest level with any, tried or not; when
// every candidate is ejected, the candidates of the nearest level. It
// returns nil only for no candidates. The result is a new slice.
//
// An endpoint on probation that Pick offers is held for this call (rule
// 5), and Pick returns it alone: the call is its probe. Other calls do not
// get it until this one's outcome is reported, or BaseTime has passed.
func Pick[N any](nodes []N, at func(N) (locality.Level, *Endpoint), tried *Tried) (locality.Level, []N) {
	for {
		lvl, out, raced := pick(nodes, at, tried, time.Now())
		if !raced {
			return lvl, out
		}
		// Another call took the probe of the only candidate left: pick
		// again without it.
	}
}

// Classes of candidates, from worst to best (rule 3).
const (
	classAny        = iota // ejected, or on probation with its probe held
	classNotEjected        // tried by this call
	classAvailable         // not ejected, not tried
)

func pick[N any](nodes []N, at func(N) (locality.Level, *Endpoint), tried *Tried, now time.Time) (locality.Level, []N, bool) {
	if len(nodes) == 0 {
		return locality.LevelAny, nil, false
	}
	capped := overCap(nodes, at, now)
	class := func(n N) (locality.Level, int, *Endpoint) {
		lvl, ep := at(n)
		switch {
		case ep != nil && !ep.usable(now) && !capped[ep]:
			return lvl, classAny, ep
		case tried.Has(ep), ep != nil && !capped[ep] && ep.probation.Load() && tried.Probed():
			// Tried already, or a probe for a call that made one.
			return lvl, classNotEjected, ep
		default:
			return lvl, classAvailable, ep
		}
	}
	// The nearest level per class, in one pass.
	var best [3]locality.Level
	for i := range best {
		best[i] = locality.LevelAny + 1
	}
	for _, n := range nodes {
		lvl, c, _ := class(n)
		for i := classAny; i <= c; i++ {
			best[i] = min(best[i], lvl)
		}
	}
	want := classAvailable
	for best[want] > locality.LevelAny {
		want--
	}
	lvl := best[want]
	out := make([]N, 0, len(nodes))
	claimed := false // a candidate was left out because another call holds its probe
	for _, n := range nodes {
		l, c, ep := class(n)
		if l != lvl || c < want {
			continue
		}
		if want > classAny && ep != nil && !capped[ep] && ep.probation.Load() {
			if !ep.claim(now) {
				claimed = true
				continue
			}
			// This call is the probe: it goes there, whatever the door's
			// balancer would have chosen among the others.
			tried.probe()
			return lvl, []N{n}, false
		}
		out = append(out, n)
	}
	return lvl, out, len(out) == 0 && claimed
}

// overCap returns the ejected candidates Pick treats as not ejected
// because more of the candidates are ejected than MaxEjectionPercent
// allows (rule 4): the most recently ejected ones, as gRFC A50 refuses the
// ejections past its cap. It returns nil when none is, which is always the
// case without a cap.
func overCap[N any](nodes []N, at func(N) (locality.Level, *Endpoint), now time.Time) map[*Endpoint]bool {
	var ejected []*Endpoint
	for _, n := range nodes {
		if _, ep := at(n); ep != nil && ep.t.cfg.MaxEjectionPercent < 100 && !ep.Available(now) {
			ejected = append(ejected, ep)
		}
	}
	if len(ejected) == 0 {
		return nil
	}
	// A50 ejects while fewer than the percentage are: at most
	// ceil(pct*n/100) of n.
	pct := ejected[0].t.cfg.MaxEjectionPercent
	allowed := (pct*len(nodes) + 99) / 100
	if len(ejected) <= allowed {
		return nil
	}
	slices.SortStableFunc(ejected, func(a, b *Endpoint) int { return cmp.Compare(a.since.Load(), b.since.Load()) })
	out := make(map[*Endpoint]bool, len(ejected)-allowed)
	for _, ep := range ejected[allowed:] {
		out[ep] = true
	}
	return out
}

// Tried records the endpoints the attempts of one call went to (rule 6).
// A nil *Tried records nothing and has tried nothing. It is safe for
// concurrent use.
type Tried struct {
	mu     sync.Mutex // guards the fields below
	eps    []*Endpoint
	probed bool // an attempt was the probe of an endpoint on probation
}

// probe records that Pick gave the call a probe.
func (t *Tried) probe() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.probed = true
	t.mu.Unlock()
}

// Probed reports whether an attempt of the call was the probe of an
// endpoint on probation (rule 5): its later attempts are not given
// another while other candidates are available.
func (t *Tried) Probed() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.probed
}

// Add records that an attempt went to e.
func (t *Tried) Add(e *Endpoint) {
	if t == nil || e == nil {
		return
	}
	t.mu.Lock()
	t.eps = append(t.eps, e)
	t.mu.Unlock()
}

// Has reports whether an attempt went to e.
func (t *Tried) Has(e *Endpoint) bool {
	if t == nil || e == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range t.eps {
		if x == e {
			return true
		}
	}
	return false
}

// Len returns the number of attempts recorded.
func (t *Tried) Len() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.eps)
}

type triedKey struct{}

// WithTried returns ctx carrying a new Tried record for one call, and the
// record. A door's retry logic calls it once per call, before the first
// attempt; its picker finds the record with TriedFrom.
func WithTried(ctx context.Context) (context.Context, *Tried) {
	t := &Tried{}
	return context.WithValue(ctx, triedKey{}, t), t
}

// TriedFrom returns the record ctx carries, or nil.
func TriedFrom(ctx context.Context) *Tried {
	t, _ := ctx.Value(triedKey{}).(*Tried)
	return t
}
