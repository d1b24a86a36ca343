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

	"github.com/regchain/regchain/internal/testutil"
	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start runs a mirror until the test ends (or stop is called) and returns
// it with its stop function.
func start(t *testing.T, cfg mirror.Config) (*mirror.Mirror, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	m, err := mirror.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}
	t.Cleanup(stop)
	return m, stop
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
