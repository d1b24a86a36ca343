package grpcbalancer

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/locality"
)

// endpoint is what the policy knows of one endpoint of the resolver's
// state.
type endpoint struct {
	addr  string         // its first address, for logs
	level locality.Level // its nearest level as seen from the client

	// Counted by the pickers' Done callbacks, on RPC goroutines.
	calls, failures atomic.Int64 // in the current interval
	consecutive     atomic.Int64 // failures since the last success

	// Guarded by the balancer's mu.
	ejected    bool
	ejectedAt  time.Time
	multiplier int // ejections not yet decayed; an ejection lasts base*multiplier
}

// failed reports whether an RPC's result counts against its endpoint. ok is
// false for results that say nothing of it: the call was never sent (grpc-go
// reports a pick whose connection was not ready as a zero DoneInfo) or the
// client cancelled it.
func failed(di balancer.DoneInfo) (fail, ok bool) {
	if di.Err == nil {
		return false, di.BytesReceived
	}
	switch status.Code(di.Err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.DataLoss:
		return true, true
	case codes.Canceled:
		return false, false
	}
	return false, di.BytesReceived // the server answered with an application error
}

// record counts one call's result on e. It reports whether e has just
// reached limit consecutive failures (exactly once per run of failures).
func (e *endpoint) record(di balancer.DoneInfo, limit int) bool {
	fail, ok := failed(di)
	if !ok {
		return false
	}
	e.calls.Add(1)
	if !fail {
		if e.consecutive.Load() != 0 { // no write (cache line traffic) in the common case
			e.consecutive.Store(0)
		}
		return false
	}
	e.failures.Add(1)
	return e.consecutive.Add(1) == int64(limit)
}

// ejection is the ejection logic over a set of endpoints, apart from
// timers and pickers so that it can be driven with any clock. Its methods
// are called with the balancer's mu held.
type ejection struct {
	cfg outlierConfig
}

// mayEject reports whether one more endpoint may be ejected out of eps:
// only while fewer than maxEjectionPercent of them are.
func (x ejection) mayEject(eps []*endpoint) bool {
	n := 0
	for _, e := range eps {
		if e.ejected {
			n++
		}
	}
	return n*100 < x.cfg.maxEjectionPercent*len(eps)
}

// eject ejects e at now if the max ejection percent allows; it reports
// whether it did.
func (x ejection) eject(e *endpoint, eps []*endpoint, now time.Time) bool {
	if e.ejected || !x.mayEject(eps) {
		return false
	}
	e.ejected = true
	e.ejectedAt = now
	e.multiplier++
	return true
}

// until returns when e's current ejection ends.
func (x ejection) until(e *endpoint) time.Time {
	d := x.cfg.baseEjection * time.Duration(e.multiplier)
	if d > x.cfg.maxEjection || d < 0 {
		d = x.cfg.maxEjection
	}
	return e.ejectedAt.Add(d)
}

// readmit re-admits the endpoints whose ejection has run out at now, with
// clean counters. It reports whether any was, and when the next ejection
// ends (zero: none left).
func (x ejection) readmit(eps []*endpoint, now time.Time) (changed bool, next time.Time) {
	for _, e := range eps {
		if !e.ejected {
			continue
		}
		if u := x.until(e); !now.Before(u) {
			e.ejected = false
			e.calls.Store(0)
			e.failures.Store(0)
			e.consecutive.Store(0)
			changed = true
		} else if next.IsZero() || u.Before(next) {
			next = u
		}
	}
	return changed, next
}

// interval ends an interval at now: endpoints over the failure percentage
// are ejected, the others' multipliers decay, counters restart. It returns
// the endpoints it ejected.
func (x ejection) interval(eps []*endpoint, now time.Time) []*endpoint {
	var out []*endpoint
	for _, e := range eps {
		calls, fails := e.calls.Swap(0), e.failures.Swap(0)
		if e.ejected {
			continue
		}
		if calls >= int64(x.cfg.requestVolume) && calls > 0 && fails*100 >= int64(x.cfg.failurePercentage)*calls {
			if x.eject(e, eps, now) {
				out = append(out, e)
				continue
			}
		}
		if e.multiplier > 0 {
			e.multiplier--
		}
	}
	return out
}
