package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testGuard confirms drops within a fraction of a second, for the tests
// that are not about the guard (its default holds them for a minute).
var testGuard = chain.Guard{Window: 300 * time.Millisecond, Confirmations: 2}

// start runs a mirror until the test ends (then Close) or stop is called
// (Withdraw, which must succeed) and returns it with its stop function. A zero
// cfg.Guard becomes testGuard.
func start(t *testing.T, cfg mirror.Config) (*mirror.Mirror, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.Guard == (chain.Guard{}) {
		cfg.Guard = testGuard
	}
	m, err := mirror.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	stopped := false
	end := func(withdraw bool) {
		if stopped {
			return
		}
		stopped = true
		if withdraw {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.Withdraw(ctx); err != nil {
				t.Errorf("Withdraw: %v", err)
			}
		} else {
			m.Close() // the registries may be closed already
		}
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil after Close or Withdraw", err)
		}
	}
	t.Cleanup(func() { end(false) })
	return m, func() { end(true) }
}

func inst(name, id string, port int) *registry.Instance {
	return &registry.Instance{ID: id, Name: name, Version: "v1", Metadata: map[string]string{"k": "v"},
		Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", port)}}
}

// state describes a service in r as "id<origin> ..." ("-" for none).
func state(r registry.Registry, service string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ins, err := r.GetService(ctx, service)
	if errors.Is(err, registry.ErrNotFound) {
		return "-"
	}
	if err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	for _, in := range ins {
		parts = append(parts, in.ID+"<"+mirror.Origin(in)+">")
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func waitState(t *testing.T, r registry.Registry, service, want string) time.Duration {
	t.Helper()
	return testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("%s = %q", service, want), func() string {
		if got := state(r, service); got != want {
			return "got " + got
		}
		return ""
	})
}

func register(t *testing.T, r registry.Registry, ins ...*registry.Instance) {
	t.Helper()
	for _, in := range ins {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.Register(ctx, in)
		cancel()
		if err != nil {
			t.Fatalf("register %s: %v", in.Key(), err)
		}
	}
}

func deregister(t *testing.T, r registry.Registry, ins ...*registry.Instance) {
	t.Helper()
	for _, in := range ins {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.Deregister(ctx, in)
		cancel()
		if err != nil {
			t.Fatalf("deregister %s: %v", in.Key(), err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() string) time.Duration {
	t.Helper()
	return testutil.WaitFor(t, 60*time.Second, what, cond)
}

func itoa(n int) string { return fmt.Sprint(n) }
