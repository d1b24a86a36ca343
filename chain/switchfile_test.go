package chain_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

func TestSwitchFile(t *testing.T) {
	mems, tiers := memTiers(1)
	ctx := context.Background()
	if err := mems[0].Register(ctx, inst("svc", "a", 1)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "freeze")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := newChain(t, tiers, chain.WithSwitchFile(path), chain.WithSwitchFileInterval(5*time.Millisecond))
	if !c.Frozen() {
		t.Fatal("a switch file present at start: not frozen when New returns")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, testutil.Timeout(t), "unfrozen after removal", testutil.Until(func() bool { return !c.Frozen() }))
	mustGet(t, c, "svc", "a")
	if err := mems[0].Register(ctx, inst("svc", "b", 2)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, testutil.Timeout(t), "b served", testutil.Until(func() bool { return serviceStatus(c, "svc").Instances == 2 }))
	if err := mems[0].Deregister(ctx, inst("svc", "b", 2)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, testutil.Timeout(t), "b gone", testutil.Until(func() bool { return serviceStatus(c, "svc").Instances == 1 }))

	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, testutil.Timeout(t), "frozen after the file appears", testutil.Until(c.Frozen))
	a, err := c.GetServiceWithInfo(ctx, "svc")
	if err != nil || a.Source != chain.SnapshotSource {
		t.Fatalf("frozen read = %+v, %v; want Source snapshot", a, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, testutil.Timeout(t), "unfrozen after the second removal", testutil.Until(func() bool { return !c.Frozen() }))
}

// TestSwitchFileAndFreeze checks that only the file's appearing and
// disappearing switch: an operator's Freeze in between stands.
func TestSwitchFileAndFreeze(t *testing.T) {
	path := filepath.Join(t.TempDir(), "freeze")
	synctest.Test(t, func(t *testing.T) {
		_, c := memChain(t, 1, chain.WithSwitchFile(path), chain.WithSwitchFileInterval(10*time.Millisecond))
		settle := func() {
			time.Sleep(100 * time.Millisecond) // ten polls, in the bubble's time
			synctest.Wait()
		}
		c.Freeze(true)
		settle()
		if !c.Frozen() {
			t.Fatal("a poll of an absent file undid the operator's Freeze")
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		settle()
		c.Freeze(false) // the operator again, with the file present
		settle()
		if c.Frozen() {
			t.Fatal("a poll of a file still present undid the operator's unfreeze")
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		c.Freeze(true)
		settle()
		if c.Frozen() {
			t.Fatal("the file's removal did not unfreeze")
		}
	})
}
