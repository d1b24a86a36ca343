package chain

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// probeService is the service the probe shim reads from tiers that do not
// implement registry.Pinger; any answer, "not found" included, means up.
const probeService = "regchain.health-probe"

// tier is one tier with its health: a circuit breaker that opens after
// threshold consecutive failures and closes on the first successful probe.
type tier struct {
	c        *Chain
	idx      int
	name     string
	reg      registry.Registry
	readOnly bool
	ping     func(ctx context.Context) error
	verify   bool // writable and without a RegistrationReporter: the probe checks the chain's own registrations

	up atomic.Bool // breaker closed; read without the lock on hot paths
	// The loop starts a probe when probeAt (Unix ns) is due, and a replay
	// when replayWake is set or replayAt (Unix ns, 0: none) is due; each
	// runs on a goroutine of its own while busy.
	probeAt, replayAt     atomic.Int64
	probeBusy, replayBusy atomic.Bool
	replayWake            atomic.Bool
	replayBackoff         backoff.Backoff // owned by the replay running
	lat                   latency         // call latencies (latency.go)
	failures              atomic.Int64
	replays               atomic.Int64
	downs                 atomic.Int64
	epoch                 atomic.Int64 // counts recoveries: watchers of an older epoch are restarted

	mu          sync.Mutex // guards the fields below
	since       time.Time  // last health change; zero: none since start
	upSince     time.Time  // when it last came up; zero: up since start
	consecutive int
	lastErr     error
	lastOK      time.Time
	// okBeforeDown is lastOK when the breaker last opened: the tier's last
	// answer before it went down, which no later answer moves.
	okBeforeDown time.Time
}

func newTier(c *Chain, idx int, t Tier) *tier {
	tr := &tier{c: c, idx: idx, name: t.Name, reg: t.Registry, readOnly: t.ReadOnly}
	tr.replayBackoff = backoff.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	if p, ok := t.Registry.(registry.Pinger); ok {
		tr.ping = p.Ping
	} else {
		tr.ping = func(ctx context.Context) error {
			_, err := t.Registry.GetService(ctx, probeService)
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			return err
		}
	}
	_, reports := t.Registry.(registry.RegistrationReporter)
	tr.verify = !t.ReadOnly && !reports
	tr.up.Store(true) // optimistic: the first probe runs at once
	return tr
}

func (t *tier) isUp() bool { return t.up.Load() }

// stable reports whether the tier is up and has been for the failback
// hysteresis (or since the chain started).
func (t *tier) stable(now time.Time) bool {
	if !t.up.Load() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.upSince.IsZero() || now.Sub(t.upSince) >= t.c.opts.failbackAfter
}

// provenAs reports whether t has been up at least as long as o: failing
// back from o to t then needs no hysteresis (both came back together).
func (t *tier) provenAs(o *tier) bool {
	if !o.up.Load() {
		return true
	}
	t.mu.Lock()
	ts := t.upSince
	t.mu.Unlock()
	o.mu.Lock()
	os := o.upSince
	o.mu.Unlock()
	return !ts.After(os)
}

// stableAt returns when an up tier becomes stable, ok false when down.
func (t *tier) stableAt() (time.Time, bool) {
	if !t.up.Load() {
		return time.Time{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.upSince.IsZero() {
		return time.Time{}, false
	}
	return t.upSince.Add(t.c.opts.failbackAfter), true
}

// downConfirmed returns, while the tier is down, its last answer before
// it went down (zero if it never answered); zero while it is up.
func (t *tier) downConfirmed() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.up.Load() {
		return time.Time{}
	}
	return t.okBeforeDown
}

func (t *tier) lastConfirmed() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastOK
}

// countsAsFailure reports whether err says something about the tier's
// health (rather than about the request).
func countsAsFailure(err error) bool {
	return errors.Is(err, registry.ErrUnavailable) || errors.Is(err, registry.ErrClosed) || errors.Is(err, context.DeadlineExceeded)
}

// report feeds the outcome of a call, watch or probe into the breaker. Only
// a probe closes an open breaker.
func (t *tier) report(err error, probe bool) {
	now := time.Now()
	if err == nil || !countsAsFailure(err) {
		t.mu.Lock()
		t.lastOK = now
		t.consecutive = 0
		t.lastErr = nil
		recovered := probe && !t.up.Load()
		if recovered {
			t.epoch.Add(1)
			t.up.Store(true)
			t.since, t.upSince = now, now
		}
		t.mu.Unlock()
		if recovered {
			t.c.onTierUp(t)
		}
		return
	}
	t.failures.Add(1)
	t.mu.Lock()
	t.consecutive++
	t.lastErr = err
	opened := t.up.Load() && t.consecutive >= t.c.opts.threshold
	if opened {
		t.up.Store(false)
		t.since = now
		t.okBeforeDown = t.lastOK
	}
	t.mu.Unlock()
	if opened {
		t.downs.Add(1)
		t.c.onTierDown(t, err)
	}
}

// wakeReplay has the loop start a replay of the tier's pending writes.
func (t *tier) wakeReplay() {
	t.replayWake.Store(true)
	t.c.kickLoop()
}
