package chain_test

import (
	"context"
	"errors"
	"testing"

	"github.com/regchain/regchain/registry"
)

// TestWatchDoneContext: Watch with a ctx that is already done returns a
// watcher that is already stopped, with both errors.
func TestWatchDoneContext(t *testing.T) {
	_, c := memChain(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range []string{"svc", ""} {
		for range 100 {
			w, err := c.Watch(ctx, name)
			if err != nil {
				t.Fatalf("Watch(%q): %v", name, err)
			}
			if _, err := w.Next(); !errors.Is(err, registry.ErrStopped) || !errors.Is(err, context.Canceled) {
				t.Fatalf("Next on a watcher of a done ctx = %v", err)
			}
		}
	}
}
