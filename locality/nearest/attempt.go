package nearest

import (
	"sync"
	"time"
)

// Defaults of AttemptTimeouts' zero fields (rule 8).
const (
	// DefaultAttemptFactor: an attempt is given up after this many times
	// the slowest recent successful attempt of its operation.
	DefaultAttemptFactor = 4
	// DefaultMinAttemptTimeout is the shortest attempt timeout: below it,
	// scheduling pauses and garbage collection on either side would give
	// up attempts that were about to answer.
	DefaultMinAttemptTimeout = 100 * time.Millisecond
	// DefaultAttemptSamples: no attempt timeout for an operation before
	// this many of its attempts have succeeded.
	DefaultAttemptSamples = 20
	// attemptWindow is how many successes a window of the slowest holds:
	// the slowest of the last 64 to 128 successes counts.
	attemptWindow = 64
	// maxOperations bounds the operations an AttemptTimeouts keeps; later
	// ones get no attempt timeout.
	maxOperations = 4096
)

// AttemptTimeouts derives a per-attempt timeout for each operation from
// the durations of its recent successful attempts (rule 8 of the package
// doc). The zero value is usable and takes the defaults; it must not be
// copied after first use. It is safe for concurrent use.
type AttemptTimeouts struct {
	// Factor multiplies the slowest recent success. If zero,
	// DefaultAttemptFactor.
	Factor float64
	// Min is the shortest timeout. If zero, DefaultMinAttemptTimeout.
	Min time.Duration
	// Samples is the number of successes of an operation needed before it
	// gets a timeout. If zero, DefaultAttemptSamples.
	Samples int

	mu  sync.Mutex // guards ops
	ops map[string]*opLatency
}

// opLatency is the slowest success of the current window and of the one
// before, so that the slowest of the last attemptWindow successes or more
// always counts, with O(1) work per success.
type opLatency struct {
	n         int // successes seen
	inWindow  int // successes in the current window
	cur, prev time.Duration
}

// Observe records the duration of one successful attempt of op.
func (a *AttemptTimeouts) Observe(op string, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ops == nil {
		a.ops = make(map[string]*opLatency)
	}
	o := a.ops[op]
	if o == nil {
		if len(a.ops) >= maxOperations {
			return
		}
		o = &opLatency{}
		a.ops[op] = o
	}
	if o.inWindow == attemptWindow {
		o.prev, o.cur, o.inWindow = o.cur, 0, 0
	}
	o.inWindow++
	o.cur = max(o.cur, d)
	o.n = min(o.n+1, 1<<30)
}

// Timeout returns the attempt timeout of op: Factor times the slowest of
// its recent successful attempts, at least Min; 0 (none) before Samples
// of them.
func (a *AttemptTimeouts) Timeout(op string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.ops[op]
	samples := a.Samples
	if samples <= 0 {
		samples = DefaultAttemptSamples
	}
	if o == nil || o.n < samples {
		return 0
	}
	factor, floor := a.Factor, a.Min
	if factor <= 0 {
		factor = DefaultAttemptFactor
	}
	if floor <= 0 {
		floor = DefaultMinAttemptTimeout
	}
	return max(floor, time.Duration(factor*float64(max(o.cur, o.prev))))
}
