package testutil

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Load makes calls one after another on a goroutine of its own, until
// Stop, and keeps what they returned: how many there were, the errors,
// and who answered the last ones. Fault tests run it while they kill or
// cut off servers, and count the failed calls.
type Load struct {
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex // guards the fields below
	calls  int
	errs   []error
	recent []string // answerers of the last calls, oldest first
}

// StartLoad starts calling call, each call bounded by perCall.
func StartLoad(call func(ctx context.Context) (string, error), perCall time.Duration) *Load {
	l := &Load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), perCall)
			who, err := call(ctx)
			cancel()
			l.mu.Lock()
			l.calls++
			if err != nil {
				l.errs = append(l.errs, err)
				who = "error"
			}
			l.recent = append(l.recent, who)
			if len(l.recent) > 100 {
				l.recent = slices.Delete(l.recent, 0, len(l.recent)-100)
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// Only returns "" when the last n calls (n <= 100) were all answered by
// want and at least n calls were made, else why not: a condition for
// WaitFor.
func (l *Load) Only(n int, want string) func() string {
	return func() string {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.recent) < n {
			return fmt.Sprintf("%d calls so far", len(l.recent))
		}
		for _, who := range l.recent[len(l.recent)-n:] {
			if who != want {
				return fmt.Sprintf("last %d calls answered by %v", n, l.recent[len(l.recent)-n:])
			}
		}
		return ""
	}
}

// Calls returns the number of calls made so far.
func (l *Load) Calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

// Stop stops the calls and returns how many were made and the errors of
// those that failed.
func (l *Load) Stop() (calls int, errs []error) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls, slices.Clone(l.errs)
}
