package kratosplugin_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2/log"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"
)

// waitTimeout bounds every wait for a condition.
const waitTimeout = 20 * time.Second

// eventually polls cond until it returns "" or the deadline passes; the last
// non-empty answer says what was wrong.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, waitTimeout, msg)
		}
		<-tick.C
	}
}

type nextResult struct {
	list []*kratosregistry.ServiceInstance
	err  error
}

// nextAsync calls w.Next in a goroutine; the channel gets its result.
func nextAsync(w kratosregistry.Watcher) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		list, err := w.Next()
		ch <- nextResult{list, err}
	}()
	return ch
}

// receive waits for a Next result.
func receive(t *testing.T, ch <-chan nextResult) nextResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("Next did not return within %v", waitTimeout)
		return nextResult{}
	}
}

// blocked asserts that Next has not returned within d: the only way to
// check that a call blocks is to give it a chance to return.
func blocked(t *testing.T, ch <-chan nextResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("Next returned (%s, %v), want it to block", ids(r.list), r.err)
	case <-time.After(d):
	}
}

// ids describes a list as "[id1 id2]".
func ids(list []*kratosregistry.ServiceInstance) string {
	out := make([]string, len(list))
	for i, si := range list {
		out[i] = si.ID
	}
	return fmt.Sprint(out)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recordingLogger is a Kratos logger that keeps what it is given.
type recordingLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordingLogger) Log(level log.Level, keyvals ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(level, keyvals))
	return nil
}

func (l *recordingLogger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *recordingLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.lines)
}
