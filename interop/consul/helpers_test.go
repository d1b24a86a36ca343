package consulinterop

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// recoverWithin bounds every wait for a state to show on the other side.
const recoverWithin = 30 * time.Second

// testConfig is a configuration with short timings (heartbeats every 667ms,
// blocking queries of 2s) and logs to the test's output.
func testConfig(t *testing.T, addr string) consul.Config {
	return consul.Config{
		Address:  addr,
		TTL:      2 * time.Second,
		WaitTime: 2 * time.Second,
		Timeout:  2 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// newRegistry returns a registry closed when the test ends.
func newRegistry(t *testing.T, cfg consul.Config) *consul.Registry {
	t.Helper()
	r, err := consul.New(cfg)
	if err != nil {
		t.Fatalf("consul.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// until reads w until an update of svc holds exactly want; transient
// errors are logged. It fails after timeout.
func until(t *testing.T, w registry.Watcher, svc string, timeout time.Duration, want ...*registry.Instance) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *registry.Update
	for time.Now().Before(deadline) {
		u, err := testutil.Next(t, w, time.Until(deadline)+time.Second)
		if err != nil {
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				t.Fatalf("watch %s: watcher ended: %v", svc, err)
			}
			t.Logf("watch %s: transient error: %v", svc, err)
			continue
		}
		if u.Service != svc {
			continue
		}
		last = u
		if registry.EqualInstances(u.Instances, want) {
			return
		}
	}
	t.Fatalf("watch %s: want %v, last update %v", svc, want, last)
}
