package testutil

import (
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, Timeout(t), "third call", func() string {
		if n.Add(1) < 3 {
			return "not yet"
		}
		return ""
	})
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3", got)
	}
	WaitFor(t, Timeout(t), "true", Until(func() bool { return true }))
}
