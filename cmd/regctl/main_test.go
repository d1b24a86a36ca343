package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// runMainEnv makes the test binary run regctl's main instead of the tests,
// so that TestSignal can run regctl as a process and signal it.
const runMainEnv = "REGCTL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main() // exits
	}
	goleak.VerifyTestMain(m)
}

// result is what one run of regctl returned.
type result struct {
	code           int
	stdout, stderr string
}

// regctl runs the command line args to completion.
func regctl(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// wantCode fails the test unless r exited with code; it returns r.
func wantCode(t *testing.T, r result, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// wantContains fails the test unless s contains every one of subs.
func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

// background is a regctl run in a goroutine (a watch).
type background struct {
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	done           chan int // receives the exit code
}

func start(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan int, 1)}
	go func() { b.done <- run(ctx, args, &b.stdout, &b.stderr) }()
	t.Cleanup(func() {
		// A test that failed half-way must not leave the run behind.
		cancel()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Error("regctl did not return within 10s of its ctx being cancelled")
		}
	})
	return b
}

// wait returns the exit code once the run has returned.
func (b *background) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup
		return code
	case <-time.After(timeout):
		t.Fatalf("regctl still running after %v\nstdout:\n%s\nstderr:\n%s", timeout, b.stdout.String(), b.stderr.String())
		return 0
	}
}

// lines returns the complete lines written to stdout so far.
func (b *background) lines() []string {
	s := b.stdout.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// waitLines waits until the run has written at least n lines to stdout.
func (b *background) waitLines(t *testing.T, n int, timeout time.Duration) []string {
	t.Helper()
	waitFor(t, timeout, func() bool { return len(b.lines()) >= n })
	return b.lines()
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		<-tick.C
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// quiet is a logger for the registries the tests write with.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ctxT returns a ctx bounded by 10s and by the test.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
