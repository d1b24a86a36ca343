package chain_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

func TestLatencyHistograms(t *testing.T) {
	mems, tiers := memTiers(1)
	ctx := context.Background()
	if err := mems[0].Register(ctx, inst("svc", "a", 1)); err != nil {
		t.Fatal(err)
	}
	c := newChain(t, tiers, chain.WithProbeInterval(5*time.Millisecond))
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
