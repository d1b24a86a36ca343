package chain_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

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
