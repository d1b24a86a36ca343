package testutil

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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

func TestLoad(t *testing.T) {
	var n atomic.Int64
	l := StartLoad(func(ctx context.Context) (string, error) {
		switch i := n.Add(1); {
		case i == 3:
			return "", errors.New("boom")
		case i < 10:
			return "a", nil
		default:
			return "b", nil
		}
	}, time.Second)
	WaitFor(t, 10*time.Second, "calls answered by b", l.Only(20, "b"))
	calls, errs := l.Stop()
	if calls < 29 || len(errs) != 1 || errs[0].Error() != "boom" {
		t.Fatalf("Stop = %d calls, errors %v; want at least 29 and [boom]", calls, errs)
	}
	if why := l.Only(200, "b")(); why == "" {
		t.Error("Only(200) true with at most 100 calls kept")
	}
}
