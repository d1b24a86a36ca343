package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDrill runs the drill to its end, within the minute it promises.
func TestDrill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	for _, want := range []string{
		"steady: reader in dc-a calls a1:",
		"read from dc-a",
		"killing datacenter dc-a",
		"failover: reader in dc-a calls b1:",
		"zones dc-b,dc-b; read from dc-b",
		"failback: reader in dc-a calls a1:",
		"drill done",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The reader in dc-b never leaves its own zone.
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "reader in dc-b") && !strings.Contains(line, "zones dc-b,dc-b; read from dc-b") {
			t.Errorf("reader in dc-b left its zone: %s", line)
		}
	}
}
