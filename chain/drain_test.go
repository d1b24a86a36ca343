package chain_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestDrain(t *testing.T) {
	ctx := context.Background()
	t.Run("every tier", func(t *testing.T) {
		mems, c := memChain(t, 2)
		for _, in := range []*registry.Instance{inst("a", "1", 1), inst("a", "2", 2), inst("b", "1", 3)} {
			if err := c.Register(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		if err := mems[0].Register(ctx, inst("a", "other", 4)); err != nil {
			t.Fatal(err)
		}
		if err := c.Drain(ctx); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		for i, m := range mems {
			got, _ := m.GetService(ctx, "a")
			if i == 0 && (len(got) != 1 || got[0].ID != "other") {
				t.Errorf("tier%d a = %v, want [other]", i+1, ids(got))
			}
			if i == 1 && len(got) != 0 {
				t.Errorf("tier%d a = %v, want none", i+1, ids(got))
			}
			if got, _ := m.GetService(ctx, "b"); len(got) != 0 {
				t.Errorf("tier%d b = %v, want none", i+1, ids(got))
			}
		}
		if n := len(c.Registrations()); n != 0 {
			t.Errorf("%d registrations after Drain, want 0", n)
		}
	})
	t.Run("a tier down is not waited for", func(t *testing.T) {
		mems, c := memChain(t, 2, chain.WithProbeInterval(5*time.Millisecond), chain.WithFailureThreshold(1))
		if err := c.Register(ctx, inst("a", "1", 1)); err != nil {
			t.Fatal(err)
		}
		mems[1].SetAvailable(false)
		testutil.WaitFor(t, testutil.Timeout(t), "tier2 down", testutil.Until(func() bool { return !tierStatus(c, "tier2").Up }))
		if err := c.Drain(ctx); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if got, _ := mems[0].GetService(ctx, "a"); len(got) != 0 {
			t.Errorf("tier1 a = %v, want none", ids(got))
		}
	})
	t.Run("bounded by ctx", func(t *testing.T) {
		m := sticky{registrytest.NewMemoryNamed("sticky")}
		c := newChain(t, []chain.Tier{{Name: "sticky", Registry: m}})
		if err := c.Register(ctx, inst("a", "1", 1)); err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := c.Drain(dctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `tier sticky: "a" still shows 1`) {
			t.Fatalf("Drain = %v, want DeadlineExceeded naming the instance", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		_, c := memChain(t, 1)
		c.Close()
		if err := c.Drain(ctx); !errors.Is(err, registry.ErrClosed) {
			t.Fatalf("Drain after Close = %v, want ErrClosed", err)
		}
	})
}
