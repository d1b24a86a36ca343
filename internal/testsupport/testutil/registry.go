package testutil

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// Sees returns a WaitFor condition true when GetService on r returns
// exactly want (ErrNotFound for none).
func Sees(tb testing.TB, r registry.Registry, svc string, want ...*registry.Instance) func() string {
	return func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := r.GetService(ctx, svc)
		if len(want) == 0 {
			if errors.Is(err, registry.ErrNotFound) {
				return ""
			}
			return fmt.Sprintf("got %v, %v; want ErrNotFound", got, err)
		}
		if err != nil {
			return err.Error()
		}
		if !registry.EqualInstances(got, want) {
			return fmt.Sprintf("got %v, want %v", got, want)
		}
		return ""
	}
}

// Next calls w.Next and fails tb if it does not return within timeout
// (stopping w first, so that no goroutine is left behind).
func Next(tb testing.TB, w registry.Watcher, timeout time.Duration) (*registry.Update, error) {
	tb.Helper()
	type result struct {
		u   *registry.Update
		err error
	}
	ch := make(chan result, 1)
	go func() {
		u, err := w.Next()
		ch <- result{u, err}
	}()
	select {
	case r := <-ch:
		return r.u, r.err
	case <-time.After(timeout):
		w.Stop()
		<-ch
		tb.Fatalf("Next did not return within %v", timeout)
		return nil, nil
	}
}

// Reader reads a watcher on its own goroutine, so that a test can wait
// for states with deadlines. Start one with WatchReader.
type Reader struct {
	// C delivers every Next result, for a test that looks at one itself.
	C      <-chan WatchResult
	source string

	mu     sync.Mutex                  // guards the fields below
	latest map[string]*registry.Update // last Update per service read from the watcher, read by Until
	read   uint64                      // results read from the watcher
	sent   uint64                      // results taken from C
	moved  chan struct{}               // closed and replaced when sent moves
}

// WatchResult is one Next result.
type WatchResult struct {
	U   *registry.Update
	Err error
}

// WatchReader watches name on r until the test ends. Until then checks
// that every Update carries source (when not empty), a revision and a time.
func WatchReader(tb testing.TB, r registry.Registry, name, source string) *Reader {
	tb.Helper()
	w, err := r.Watch(context.Background(), name)
	if err != nil {
		tb.Fatalf("Watch(%q): %v", name, err)
	}
	ch := make(chan WatchResult)
	rd := &Reader{C: ch, source: source, latest: make(map[string]*registry.Update), moved: make(chan struct{})}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			// Recorded before it is handed over, so that a test that
			// reads C itself leaves Until knowing the state.
			rd.mu.Lock()
			if err == nil {
				rd.latest[u.Service] = u
			}
			rd.read++
			seq := rd.read
			rd.mu.Unlock()
			select {
			case ch <- WatchResult{u, err}:
			case <-stop:
				return
			}
			rd.mu.Lock()
			rd.sent = seq
			close(rd.moved)
			rd.moved = make(chan struct{})
			rd.mu.Unlock()
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
		}
	}()
	tb.Cleanup(func() {
		close(stop)
		w.Stop()
		<-done
	})
	return rd
}

// Until waits until the latest Update of svc (possibly one received
// earlier, through Until or read from C by the test) holds exactly want and returns how long it took and how many
// transient errors came meanwhile (they are logged). The watch ending, or
// timeout passing, fails tb.
func (rd *Reader) Until(tb testing.TB, timeout time.Duration, svc string, want ...*registry.Instance) (time.Duration, int) {
	tb.Helper()
	start := time.Now()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	errs := 0
	var last *registry.Update
	for {
		// The latest state read answers only once every result read has
		// been taken from C: else it would still be there for the test's
		// next read of C, which would take it for a newer one. (One just
		// taken is counted once the reader's goroutine says so: moved.)
		rd.mu.Lock()
		latest, handing, moved := rd.latest[svc], rd.read > rd.sent, rd.moved
		rd.mu.Unlock()
		if latest != nil {
			last = latest
		}
		if !handing && latest != nil && registry.EqualInstances(latest.Instances, want) {
			return time.Since(start), errs
		}
		select {
		case <-moved:
			continue
		case res := <-rd.C:
			if res.Err != nil {
				if errors.Is(res.Err, registry.ErrStopped) || errors.Is(res.Err, registry.ErrClosed) {
					tb.Fatalf("watch %s: ended: %v", svc, res.Err)
				}
				errs++
				tb.Logf("transient watch error: %v", res.Err)
				continue
			}
			if (rd.source != "" && res.U.Source != rd.source) || res.U.Revision == 0 || res.U.Time.IsZero() {
				tb.Errorf("Update %+v lacks Source, Revision or Time", res.U)
			}
			if res.U.Service != svc {
				continue
			}
			last = res.U
			if registry.EqualInstances(res.U.Instances, want) {
				return time.Since(start), errs
			}
		case <-timer.C:
			got := "nothing"
			if last != nil {
				got = fmt.Sprint(last.Instances)
			}
			tb.Fatalf("watch %s: want %v within %v, last got %s", svc, want, timeout, got)
		}
	}
}

// RoundTrip registers an instance of "tls-check" on r, waits until a read
// returns it and deregisters it, within ctx: a check that r's connection
// works. A Register that returns registry.ErrUnavailable (its first write
// timed out, the registration is kept pending) is not a failure by itself:
// the read decides. Give a working connection a generous ctx (a loaded
// machine's TLS handshake to a JVM server takes seconds); a connection
// that must fail fails by ctx's end.
func RoundTrip(ctx context.Context, r registry.Registry) error {
	in := &registry.Instance{ID: "1", Name: "tls-check", Endpoints: []string{"grpc://10.0.0.1:1"}}
	if err := r.Register(ctx, in); err != nil && !errors.Is(err, registry.ErrUnavailable) {
		return err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := r.GetService(ctx, "tls-check")
		if err == nil && len(got) == 1 {
			break
		}
		if err == nil {
			err = fmt.Errorf("got %d instances, want 1", len(got))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last read: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
	return r.Deregister(ctx, in)
}
