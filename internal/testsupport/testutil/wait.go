// Package testutil holds helpers shared by regchain's tests.
package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond every few milliseconds until it returns "" and
// returns how long that took, or fails tb with what and cond's last reason
// once timeout has passed. Tests wait on conditions with it, never on fixed
// sleeps; the returned duration is how fault tests measure recovery times.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() string) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		why := cond()
		if why == "" {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not true within %v: %s", what, timeout, why)
		}
		<-tick.C
	}
}

// Until adapts a boolean condition to WaitFor.
func Until(cond func() bool) func() string {
	return func() string {
		if cond() {
			return ""
		}
		return "condition false"
	}
}

// Timeout is the default bound for a wait: 30s, less if the test's own
// deadline is nearer.
func Timeout(tb testing.TB) time.Duration {
	d := 30 * time.Second
	if t, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := t.Deadline(); ok && time.Until(dl) < d {
			d = time.Until(dl)
		}
	}
	return d
}
