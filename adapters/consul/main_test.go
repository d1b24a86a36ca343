package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Short timings so that faults heal within seconds: heartbeats every 667ms,
// a partition noticed by a blocking query within about 4s.
const (
	testTTL      = 2 * time.Second
	testWaitTime = 2 * time.Second
)

func testConfig(t *testing.T, addr string) Config {
	return Config{
		Address:  addr,
		TTL:      testTTL,
		WaitTime: testWaitTime,
		Timeout:  2 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// newRegistry returns a registry closed when the test ends.
func newRegistry(t *testing.T, cfg Config) *Registry {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestConformance(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, err := New(testConfig(t, a.Addr))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return r
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 20ms until it returns "" and returns how long
// that took; it fails the test with cond's last reason after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		why := cond()
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v: %s", what, timeout, why)
		}
		<-tick.C
	}
}

// until reads w until an update of svc holds want; transient errors are
// logged and counted. It fails after timeout.
func until(t *testing.T, w registry.Watcher, svc string, timeout time.Duration, want ...*registry.Instance) (errs int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *registry.Update
	for time.Now().Before(deadline) {
		u, err := testutil.Next(t, w, time.Until(deadline)+time.Second)
		if err != nil {
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				t.Fatalf("watch %s: watcher ended: %v", svc, err)
			}
			errs++
			t.Logf("watch %s: transient error: %v", svc, err)
			continue
		}
		if u.Service != svc {
			continue
		}
		last = u
		if registry.EqualInstances(u.Instances, want) {
			return errs
		}
	}
	t.Fatalf("watch %s: want %v, last update %v", svc, want, last)
	return errs
}

func instance(svc, id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:        id,
		Name:      svc,
		Version:   "v1",
		Metadata:  map[string]string{"zone": "z1"},
		Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", port+1)},
	}
}

// live returns a condition true when r reports in as live (want true) or
// pending (want false).
func live(r *Registry, in *registry.Instance, want bool) func() string {
	return func() string {
		for _, s := range r.Registrations() {
			if s.Instance.Key() == in.Key() {
				if s.Live == want {
					return ""
				}
				return fmt.Sprintf("Live = %v (attempts %d, last error %v), want %v", s.Live, s.Attempts, s.LastError, want)
			}
		}
		return fmt.Sprintf("%s not in Registrations", in)
	}
}
