package nearest

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Ejection's zero fields.
const (
	// DefaultConsecutiveFailures: three failed calls in a row eject an
	// endpoint. Envoy's default is 5; a dead endpoint that is cut off
	// silently costs a timeout per failure, so fewer is better, and the
	// doors retry elsewhere the failures that are safe to retry.
	DefaultConsecutiveFailures = 3
	// DefaultBaseEjectionTime is the first ejection's length.
	DefaultBaseEjectionTime = 5 * time.Second
	// DefaultMaxEjectionTime caps an ejection: an endpoint that answers
	// again gets calls back within this long, however long it was gone.
	DefaultMaxEjectionTime = time.Minute
	// forgetAfter is how long, beyond MaxTime, an endpoint that reports
	// nothing and is not ejected stays in its Tracker.
	forgetAfter = 10 * time.Minute
)

// Ejection configures a Tracker's outlier ejection (rules 4 and 5 of the
// package doc). The zero value is usable.
type Ejection struct {
	// ConsecutiveFailures ejects an endpoint after this many failed calls
	// in a row. If zero, DefaultConsecutiveFailures; if negative, never.
	ConsecutiveFailures int
	// BaseTime is the first ejection's length; each ejection since the
	// endpoint's last success doubles it. If zero, DefaultBaseEjectionTime.
	BaseTime time.Duration
	// MaxTime caps an ejection's length. If zero, DefaultMaxEjectionTime;
	// if below BaseTime, BaseTime.
	MaxTime time.Duration
}

func (e Ejection) withDefaults() Ejection {
	if e.ConsecutiveFailures == 0 {
		e.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if e.BaseTime <= 0 {
		e.BaseTime = DefaultBaseEjectionTime
	}
	if e.MaxTime <= 0 {
		e.MaxTime = DefaultMaxEjectionTime
	}
	if e.MaxTime < e.BaseTime {
		e.MaxTime = e.BaseTime
	}
	return e
}

// Tracker keeps the outcomes of calls per endpoint. One Tracker serves a
// door for as long as it lives (a Kratos selector builder, a go-micro
// selector), so that an endpoint's history survives the door's rebuilds of
// its node lists. It is safe for concurrent use.
type Tracker struct {
	cfg Ejection

	mu     sync.Mutex // guards the fields below
	eps    map[string]*Endpoint
	sweepN int // size of eps at which the next sweep runs
}

// NewTracker returns a Tracker with the given ejection settings.
func NewTracker(cfg Ejection) *Tracker {
	return &Tracker{cfg: cfg.withDefaults(), eps: make(map[string]*Endpoint), sweepN: 1024}
}

// Endpoint returns the endpoint of key, creating it on first use. A door
// chooses its keys: whatever names one instance address of one service
// (e.g. "greeter|grpc://10.0.0.1:9000"). The same key gives the same
// Endpoint until the Tracker forgets it (see the package doc's caveats).
func (t *Tracker) Endpoint(key string) *Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.eps[key]; e != nil {
		return e
	}
	if len(t.eps) >= t.sweepN {
		t.sweep(time.Now())
		t.sweepN = max(1024, 2*len(t.eps))
	}
	e := &Endpoint{t: t, key: key}
	e.lastReport.Store(time.Now().UnixNano())
	t.eps[key] = e
	return e
}

// sweep forgets idle endpoints. t.mu is held.
func (t *Tracker) sweep(now time.Time) {
	idle := (t.cfg.MaxTime + forgetAfter).Nanoseconds()
	for k, e := range t.eps {
		if now.UnixNano()-e.lastReport.Load() > idle && e.Available(now) {
			delete(t.eps, k)
		}
	}
}

// Forget drops the endpoints whose key starts with prefix: their history
// is gone, and Endpoint makes them anew. Doors use it for a framework's
// "reset this service".
func (t *Tracker) Forget(prefix string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.eps {
		if strings.HasPrefix(k, prefix) {
			delete(t.eps, k)
		}
	}
}

// Ejected returns the keys of the endpoints ejected at now, for status
// pages and tests.
func (t *Tracker) Ejected(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k, e := range t.eps {
		if !e.Available(now) {
			out = append(out, k)
		}
	}
	return out
}

// Endpoint is one instance address as a door calls it: its recent
// outcomes and its ejection. It is safe for concurrent use.
type Endpoint struct {
	t   *Tracker
	key string

	until      atomic.Int64 // ejected until this time (UnixNano); 0: never ejected
	probation  atomic.Bool  // ejected since its last success
	probeUntil atomic.Int64 // on probation, a call holds the probe until then (UnixNano)
	lastReport atomic.Int64 // UnixNano of the last Report, for the sweep

	mu        sync.Mutex // guards the fields below
	failures  int        // consecutive failures since the last success or ejection
	ejections int        // ejections since the last success (k of rule 4)
}

// Key returns the key the Endpoint was made with.
func (e *Endpoint) Key() string { return e.key }

// Available reports whether the endpoint is not ejected at now.
func (e *Endpoint) Available(now time.Time) bool {
	return now.UnixNano() >= e.until.Load()
}

// usable reports whether a call may go to the endpoint at now: it is not
// ejected and, on probation, no other call holds the probe.
func (e *Endpoint) usable(now time.Time) bool {
	n := now.UnixNano()
	return n >= e.until.Load() && (!e.probation.Load() || n >= e.probeUntil.Load())
}

// claim takes the probe of an endpoint on probation for one call, until
// its outcome or BaseTime at most; it reports false when another call
// took it first. Off probation it always succeeds.
func (e *Endpoint) claim(now time.Time) bool {
	if !e.probation.Load() {
		return true
	}
	n := now.UnixNano()
	held := e.probeUntil.Load()
	return n >= held && e.probeUntil.CompareAndSwap(held, n+e.t.cfg.BaseTime.Nanoseconds())
}

// Report records the outcome of one call to the endpoint: failed is true
// when the door counts it as a failure (rule 7). It ejects and re-admits
// the endpoint by rules 4 and 5.
func (e *Endpoint) Report(failed bool) {
	now := time.Now()
	e.lastReport.Store(now.UnixNano())
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.Available(now) {
		return // a call in flight when it was ejected: no news
	}
	if !failed {
		e.failures, e.ejections = 0, 0
		e.probation.Store(false)
		return
	}
	cfg := e.t.cfg
	if cfg.ConsecutiveFailures < 0 {
		return
	}
	e.failures++
	if e.ejections == 0 && e.failures < cfg.ConsecutiveFailures {
		return
	}
	// Ejected: the threshold is reached, or it failed on probation.
	e.failures = 0
	e.ejections++
	d := cfg.BaseTime
	for i := 1; i < e.ejections && d < cfg.MaxTime; i++ {
		d *= 2
	}
	d = min(d, cfg.MaxTime)
	e.until.Store(now.Add(d).UnixNano())
	e.probeUntil.Store(0)
	e.probation.Store(true)
}

// State is an Endpoint's ejection state, for status pages and tests.
type State struct {
	Ejected     bool
	Until       time.Time // end of the current or last ejection; zero if never ejected
	Failures    int       // consecutive failures counted towards the next ejection
	Ejections   int       // ejections since the last success
	OnProbation bool      // re-admitted, no success yet
}

// State returns the endpoint's state at now.
func (e *Endpoint) State(now time.Time) State {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := State{Ejected: !e.Available(now), Failures: e.failures, Ejections: e.ejections}
	if u := e.until.Load(); u != 0 {
		s.Until = time.Unix(0, u)
	}
	s.OnProbation = !s.Ejected && e.probation.Load()
	return s
}
