package chain_test

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func quietLogger() *slog.Logger {
	if os.Getenv("CHAIN_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestKitMemory runs the conformance kit against chains over Memory tiers,
// under each read policy, with and without a snapshot store.
func TestKitMemory(t *testing.T) {
	cases := []struct {
		name string
		opts func() []chain.Option
	}{
		{"FirstHealthy", func() []chain.Option { return nil }},
		{"Merge", func() []chain.Option { return []chain.Option{chain.WithReadPolicy(chain.Merge)} }},
		{"Snapshot", func() []chain.Option { return []chain.Option{chain.WithSnapshot(newMemStore())} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			registrytest.Run(t, func(t *testing.T) registry.Registry {
				opts := append([]chain.Option{chain.WithLogger(quietLogger()), chain.WithOwnTiers(true)}, tc.opts()...)
				c, err := chain.New([]chain.Tier{
					{Name: "tier1", Registry: registrytest.NewMemoryNamed("m1")},
					{Name: "tier2", Registry: registrytest.NewMemoryNamed("m2")},
				}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				return c
			})
		})
	}
}
