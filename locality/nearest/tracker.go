package nearest

import (
	"log/slog"
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
	// DefaultFailurePercentage: an endpoint that fails half of its calls
	// or more within an Interval is ejected (gRFC A50's failure
	// percentage ejection), which catches the flaky endpoint that never
	// fails three times in a row.
	DefaultFailurePercentage = 50
	// DefaultRequestVolume: the failure percentage is judged over at
	// least this many calls of one Interval.
	DefaultRequestVolume = 10
	// DefaultInterval is the failure percentage's window.
	DefaultInterval = time.Second
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
	// FailurePercentage ejects an endpoint at least this share (1 to 100)
	// of whose calls failed within one Interval, once it had
	// RequestVolume calls in it. If zero, DefaultFailurePercentage; if
	// negative, never.
	FailurePercentage int
	// RequestVolume is the least number of calls in an Interval for the
	// failure percentage to count. If zero or negative,
	// DefaultRequestVolume.
	RequestVolume int
	// Interval is the failure percentage's window. If zero or negative,
	// DefaultInterval.
	Interval time.Duration
	// MaxEjectionPercent caps the share (1 to 100) of a call's candidates
	// that Pick treats as ejected (rule 4). If zero or above 100, 100: no
	// cap. A door with connection states may want one (grpcbalancer's
	// default is 50, as gRFC A50's outlier detection caps ejections); a
	// door without them should not: its dead instances are candidates
	// too, and a cap would keep sending calls to some of them.
	MaxEjectionPercent int
	// Logger, when set, receives a Warn for each ejection, with the
	// endpoint's key, the reason and the ejection's length.
	Logger *slog.Logger
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
	if e.FailurePercentage == 0 {
		e.FailurePercentage = DefaultFailurePercentage
	}
	e.FailurePercentage = min(e.FailurePercentage, 100)
	if e.RequestVolume <= 0 {
		e.RequestVolume = DefaultRequestVolume
	}
	if e.Interval <= 0 {
		e.Interval = DefaultInterval
	}
	if e.MaxEjectionPercent <= 0 || e.MaxEjectionPercent > 100 {
		e.MaxEjectionPercent = 100
	}
	return e
}

// Tracker keeps the outcomes of calls per endpoint. One Tracker serves a
// door for as long as it lives (a Kratos selector builder, a go-micro
// selector), so that an endpoint's history survives the door's rebuilds of
// its node lists. It is safe for concurrent use.
type Tracker struct {
	cfg      Ejection
	troubled atomic.Int64 // endpoints ejected or on probation (probation set)

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
			t.drop(k, e)
		}
	}
}

// Forget drops the endpoints whose key starts with prefix: their history
// is gone, and Endpoint makes them anew. Doors use it for a framework's
// "reset this service".
func (t *Tracker) Forget(prefix string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.eps {
		if strings.HasPrefix(k, prefix) {
			t.drop(k, e)
		}
	}
}

// drop forgets one endpoint. t.mu is held.
func (t *Tracker) drop(k string, e *Endpoint) {
	delete(t.eps, k)
	e.mu.Lock()
	if e.probation.Load() {
		e.probation.Store(false) // a door still holding it sees it as new
		t.troubled.Add(-1)
	}
	e.mu.Unlock()
}

// Steady reports whether none of t's endpoints is ejected or on probation.
// While it is, Pick(nodes, at, nil) returns exactly the candidates of the
// nearest level that has any, and claims nothing: a door may skip Pick's
// pass over the candidates then (grpcbalancer does, per call).
func (t *Tracker) Steady() bool { return t.troubled.Load() == 0 }

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
	since      atomic.Int64 // when the current or last ejection began (UnixNano)
	probation  atomic.Bool  // ejected since its last success
	probeUntil atomic.Int64 // on probation, a call holds the probe until then (UnixNano)
	lastReport atomic.Int64 // UnixNano of the last Report, for the sweep

	mu        sync.Mutex // guards the fields below
	failures  int        // consecutive failures since the last success or ejection
	ejections int        // ejections since the last success (k of rule 4)
	window    time.Time  // start of the failure percentage's current window; zero: none yet
	calls     int        // outcomes in the window
	failed    int        // failures in the window
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
	cfg := e.t.cfg
	if e.windowEnds(now, cfg) {
		return
	}
	if !failed {
		e.failures, e.ejections = 0, 0
		if e.probation.Swap(false) {
			e.t.troubled.Add(-1)
		}
		return
	}
	e.failed++
	if cfg.ConsecutiveFailures < 0 {
		return
	}
	e.failures++
	if e.ejections == 0 && e.failures < cfg.ConsecutiveFailures {
		return
	}
	// The threshold is reached, or it failed on probation.
	why := "consecutive failures"
	if e.ejections > 0 {
		why = "failed on probation"
	}
	e.eject(now, why)
}

// windowEnds counts one outcome in the failure percentage's window; when
// the window has run out, it first judges it (rule 4) and reports whether
// that ejected the endpoint (then the outcome counts for nothing: it came
// after the window). A window that ended more than an Interval ago
// (the endpoint had no calls since) is not judged: its failures are old
// news. e.mu is held.
func (e *Endpoint) windowEnds(now time.Time, cfg Ejection) bool {
	if cfg.FailurePercentage < 0 {
		return false
	}
	if age := now.Sub(e.window); e.window.IsZero() || age >= cfg.Interval {
		judge := !e.window.IsZero() && age < 2*cfg.Interval &&
			e.calls >= cfg.RequestVolume && e.failed*100 >= cfg.FailurePercentage*e.calls
		e.window, e.calls, e.failed = now, 0, 0
		if judge {
			e.eject(now, "failure percentage")
			return true
		}
	}
	e.calls++
	return false
}

// eject ejects the endpoint at now (rule 4). e.mu is held.
func (e *Endpoint) eject(now time.Time, why string) {
	cfg := e.t.cfg
	e.failures = 0
	e.window, e.calls, e.failed = time.Time{}, 0, 0 // re-admitted with clean counters
	e.ejections++
	d := cfg.BaseTime
	for i := 1; i < e.ejections && d < cfg.MaxTime; i++ {
		d *= 2
	}
	d = min(d, cfg.MaxTime)
	e.since.Store(now.UnixNano())
	e.until.Store(now.Add(d).UnixNano())
	e.probeUntil.Store(0)
	if !e.probation.Swap(true) {
		e.t.troubled.Add(1)
	}
	if cfg.Logger != nil {
		cfg.Logger.Warn("nearest: endpoint ejected", "endpoint", e.key, "reason", why, "for", d, "ejections", e.ejections)
	}
}

// Readmit ends the endpoint's ejection now, if it is ejected: it is on
// probation at once (rule 5), as when its ejection time has passed. A door
// calls it when it learns that the endpoint is back, such as a gRPC door
// whose connection to it became READY again after being down: the
// failures that ejected it were the old connection's.
func (e *Endpoint) Readmit() {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.Available(now) {
		e.until.Store(now.UnixNano())
		e.probeUntil.Store(0)
	}
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
