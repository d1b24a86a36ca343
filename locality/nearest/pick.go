package nearest

import (
	"context"
	"sync"
	"time"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
)

// LevelOf returns the level of an instance with metadata md relative to a
// client at self (rule 1): the nearest of locality.LevelZone,
// locality.LevelRegion and locality.LevelAny the instance belongs to.
func LevelOf(self locality.Locality, md map[string]string) locality.Level {
	in := registry.Instance{Metadata: md}
	for lvl := locality.LevelZone; lvl < locality.LevelAny; lvl++ {
		if self.Matches(lvl, &in) {
			return lvl
		}
	}
	return locality.LevelAny
}

// Pick returns the candidates a call may go to now (rule 3), in their
// order, and their level: the available ones of the nearest level that
// has any. at gives a candidate's level and Endpoint (a nil Endpoint is
// never ejected); tried is the call's record of the endpoints it already
// tried, or nil. When no candidate is available, Pick returns the
// non-ejected candidates of the nearest level with any, tried or not; when
// every candidate is ejected, the candidates of the nearest level. It
// returns nil only for no candidates. The result is a new slice.
func Pick[N any](nodes []N, at func(N) (locality.Level, *Endpoint), tried *Tried) (locality.Level, []N) {
	if len(nodes) == 0 {
		return locality.LevelAny, nil
	}
	now := time.Now()
	const (
		anyNode = iota // every candidate
		notEjected
		available // not ejected, not tried
	)
	// One pass: the nearest level per class.
	best := [3]locality.Level{locality.LevelAny + 1, locality.LevelAny + 1, locality.LevelAny + 1}
	class := func(n N) (locality.Level, int) {
		lvl, ep := at(n)
		switch {
		case ep != nil && !ep.Available(now):
			return lvl, anyNode
		case tried.Has(ep):
			return lvl, notEjected
		default:
			return lvl, available
		}
	}
	for _, n := range nodes {
		lvl, c := class(n)
		for i := anyNode; i <= c; i++ {
			best[i] = min(best[i], lvl)
		}
	}
	want := available
	for best[want] > locality.LevelAny {
		want--
	}
	lvl := best[want]
	out := make([]N, 0, len(nodes))
	for _, n := range nodes {
		if l, c := class(n); l == lvl && c >= want {
			out = append(out, n)
		}
	}
	return lvl, out
}

// Tried records the endpoints the attempts of one call went to (rule 6).
// A nil *Tried records nothing and has tried nothing. It is safe for
// concurrent use.
type Tried struct {
	mu  sync.Mutex // guards eps
	eps []*Endpoint
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
