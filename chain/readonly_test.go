package chain_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/adapters/static"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// readOnlyFile returns a file registry opened read-only: a tier whose
// writes can never succeed.
func readOnlyFile(t *testing.T) *file.Registry {
	t.Helper()
	path := filepath.Join(t.TempDir(), "reg.db")
	w, err := file.Open(path, file.Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := file.Open(path, file.Config{ReadOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A tier that refuses every write (a file opened read-only, not marked
// Tier.ReadOnly), and a chain of tiers marked read-only: Register is
// refused with ErrInvalid and nothing is left to be replayed.
func TestKitReadOnly(t *testing.T) {
	t.Run("RefusingTier", func(t *testing.T) {
		registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry {
			return newChain(t, []chain.Tier{{Name: "file", Registry: readOnlyFile(t)}})
		})
	})
	t.Run("ReadOnlyTiers", func(t *testing.T) {
		registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry {
			st, err := static.New(static.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return newChain(t, []chain.Tier{{Name: "static", Registry: st, ReadOnly: true}})
		})
	})
}

// A refused write is not replayed: after a Register the read-only file
// refused, beside a tier that took it, the chain takes the registration
// back from the other tier and has nothing pending for either.
func TestRefusedWriteNotReplayed(t *testing.T) {
	ctx := context.Background()
	mem := registrytest.NewMemoryNamed("mem")
	t.Cleanup(func() { mem.Close() })
	c := newChain(t, []chain.Tier{{Name: "mem", Registry: mem}, {Name: "file", Registry: readOnlyFile(t)}})
	t.Cleanup(func() { c.Close() })
	in := inst("svc", "a", 9000)
	err := c.Register(ctx, in)
	if !errors.Is(err, registry.ErrInvalid) || !errors.Is(err, file.ErrReadOnly) || errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Register = %v, want ErrInvalid with file.ErrReadOnly", err)
	}
	testutil.WaitFor(t, 20*time.Second, "the registration taken back and nothing pending", func() string {
		if got, err := mem.GetService(ctx, "svc"); !errors.Is(err, registry.ErrNotFound) {
			return fmt.Sprintf("the accepting tier still holds %v (%v)", ids(got), err)
		}
		for _, tier := range c.Status().Tiers {
			if tier.Pending != 0 {
				return "tier " + tier.Name + " has pending writes"
			}
		}
		return ""
	})
}
