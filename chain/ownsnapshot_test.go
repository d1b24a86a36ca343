package chain_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry/registrytest"
)

// TestSnapshotStoreOwnership: the store given to WithSnapshot stays the
// caller's (the file stays locked after chain.Close until the caller closes
// it); with WithOwnSnapshot(true) chain.Close closes it.
func TestSnapshotStoreOwnership(t *testing.T) {
	reopen := func(path string) error {
		s, err := file.OpenStore(path, file.Config{Timeout: -1, Logger: quietLogger()})
		if err == nil {
			s.Close()
		}
		return err
	}
	for _, own := range []bool{false, true} {
		name := "caller owns"
		if own {
			name = "chain owns"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "snap.db")
			store := openStore(t, path)
			c, err := chain.New([]chain.Tier{{Name: "m", Registry: registrytest.NewMemory()}},
				chain.WithSnapshot(store), chain.WithOwnSnapshot(own), chain.WithLogger(quietLogger()))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			err = reopen(path)
			switch {
			case own && err != nil:
				t.Fatalf("reopen after Close of a chain that owns the store: %v", err)
			case !own && !errors.Is(err, file.ErrLocked):
				t.Fatalf("reopen while the caller still holds the store = %v, want ErrLocked", err)
			}
			if err := store.Close(); err != nil && !own {
				t.Fatalf("caller's store Close: %v", err)
			}
			if err := reopen(path); err != nil {
				t.Fatalf("reopen after both closed: %v", err)
			}
		})
	}
}
