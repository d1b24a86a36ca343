package chain_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// recorder is a slog.Handler that keeps the messages and attributes logged.
type recorder struct {
	mu   sync.Mutex
	logs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	s := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		s += " " + a.Key + "=" + a.Value.String()
		return true
	})
	r.mu.Lock()
	r.logs = append(r.logs, s)
	r.mu.Unlock()
	return nil
}

func (r *recorder) has(sub ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		ok := true
		for _, s := range sub {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// gather returns the metrics of the family name from reg, nil when absent.
func gather(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func waitLevel(t *testing.T, c *chain.Chain, want chain.Level) chain.Degradation {
	t.Helper()
	var d chain.Degradation
	testutil.WaitFor(t, testutil.Timeout(t), "level "+want.String(), func() string {
		d = c.Status().Degradation
		if d.Level != want {
			return "level " + d.Level.String() + " " + strings.Join(d.Reasons, "; ")
		}
		return ""
	})
	return d
}

func TestDegradationLevels(t *testing.T) {
	t1, t2, static := registrytest.NewMemoryNamed("t1"), registrytest.NewMemoryNamed("t2"), registrytest.NewMemoryNamed("static")
	ctx := context.Background()
	for _, r := range []registry.Registry{t1, static} {
		if err := r.Register(ctx, inst("svc", "a", 1)); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	c := newChain(t, []chain.Tier{{Name: "t1", Registry: t1}, {Name: "static", Registry: static, ReadOnly: true}, {Name: "t2", Registry: t2}},
		chain.WithLogger(slog.New(rec)), chain.WithProbeInterval(5*time.Millisecond), chain.WithFailureThreshold(1),
		chain.WithFailbackAfter(5*time.Millisecond))
	defer c.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	if err := c.Register(ctx, inst("own", "o1", 2)); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "svc", "a")
	if d := waitLevel(t, c, chain.L0); len(d.Reasons) != 0 {
		t.Errorf("L0 reasons = %q, want none", d.Reasons)
	}

	t1.SetAvailable(false) // svc falls to the static tier; t2 still takes writes
	d := waitLevel(t, c, chain.L2)
	if !slices.Contains(d.Reasons, "1 service served from a static tier") || !slices.Contains(d.Reasons, "tier t1 is down") {
		t.Errorf("L2 reasons = %q", d.Reasons)
	}
	if d.Since.IsZero() {
		t.Error("Since is zero after a change")
	}
	testutil.WaitFor(t, testutil.Timeout(t), "log of the change to L2", testutil.Until(func() bool {
		return rec.has("degradation level changed", "to=L2")
	}))
	if m := gather(t, reg, "regchain_chain_degradation_level"); len(m) != 1 || m[0].GetGauge().GetValue() != 2 {
		t.Errorf("degradation gauge = %v, want 2", m)
	}

	t2.SetAvailable(false) // no writable tier left
	d = waitLevel(t, c, chain.L3)
	if d.Reasons[0] != "no writable tier is up: registrations cannot be written" {
		t.Errorf("L3 first reason = %q", d.Reasons[0])
	}
	mustGet(t, c, "svc", "a") // serving continues

	t1.SetAvailable(true)
	t2.SetAvailable(true)
	waitLevel(t, c, chain.L0)

	c.Freeze(true)
	d = waitLevel(t, c, chain.L1)
	if !slices.Contains(d.Reasons, "frozen: serving the last known good states") {
		t.Errorf("frozen reasons = %q", d.Reasons)
	}
	c.Freeze(false)
	waitLevel(t, c, chain.L0)
	if !rec.has("degradation level changed", "from=L1", "to=L0") {
		t.Error("no log of the change back to L0")
	}
}

func TestLevelText(t *testing.T) {
	for l := chain.L0; l <= chain.L3; l++ {
		b, _ := l.MarshalText()
		var got chain.Level
		if err := got.UnmarshalText(b); err != nil || got != l {
			t.Errorf("round trip of %v = %v, %v", l, got, err)
		}
		if l.Meaning() == "unknown level" {
			t.Errorf("%v has no meaning", l)
		}
	}
	var l chain.Level
	if err := l.UnmarshalText([]byte("L9")); err == nil {
		t.Error("UnmarshalText(L9) = nil, want an error")
	}
}

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
	defer c.Close()
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
		_, tiers := memTiers(1)
		c := newChain(t, tiers, chain.WithSwitchFile(path), chain.WithSwitchFileInterval(10*time.Millisecond))
		defer c.Close()
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

// sticky is a registry whose Deregister succeeds but removes nothing: a
// drain against it never sees the instance go.
type sticky struct{ *registrytest.Memory }

func (sticky) Deregister(context.Context, *registry.Instance) error { return nil }

func TestDrain(t *testing.T) {
	ctx := context.Background()
	t.Run("every tier", func(t *testing.T) {
		mems, tiers := memTiers(2)
		c := newChain(t, tiers)
		defer c.Close()
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
		mems, tiers := memTiers(2)
		c := newChain(t, tiers, chain.WithProbeInterval(5*time.Millisecond), chain.WithFailureThreshold(1))
		defer c.Close()
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
		defer c.Close()
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
		_, tiers := memTiers(1)
		c := newChain(t, tiers)
		c.Close()
		if err := c.Drain(ctx); !errors.Is(err, registry.ErrClosed) {
			t.Fatalf("Drain after Close = %v, want ErrClosed", err)
		}
	})
}

func TestLatencyHistograms(t *testing.T) {
	mems, tiers := memTiers(1)
	ctx := context.Background()
	if err := mems[0].Register(ctx, inst("svc", "a", 1)); err != nil {
		t.Fatal(err)
	}
	c := newChain(t, tiers, chain.WithProbeInterval(5*time.Millisecond))
	defer c.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	if err := c.Register(ctx, inst("own", "o", 2)); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "svc", "a")
	count := func(name string) uint64 {
		var n uint64
		for _, m := range gather(t, reg, name) {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" && l.GetValue() == "tier1" {
					n += m.GetHistogram().GetSampleCount()
				}
			}
		}
		return n
	}
	testutil.WaitFor(t, testutil.Timeout(t), "probe, read and write observed", func() string {
		p, r, w := count("regchain_chain_tier_probe_seconds"), count("regchain_chain_tier_read_seconds"), count("regchain_chain_tier_write_seconds")
		if p == 0 || r == 0 || w == 0 {
			return "probe/read/write counts " + strings.Join([]string{u(p), u(r), u(w)}, "/")
		}
		return ""
	})
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }
