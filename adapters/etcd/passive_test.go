package etcd

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// rangesReceived is how many Range requests the embedded etcds of this
// process have received (etcd registers its gRPC metrics on the default
// Prometheus registry).
func rangesReceived(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "grpc_server_msg_received_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "grpc_method" && l.GetValue() == "Range" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestPassivePing: a registry whose own traffic (here a registration's
// keepalives) shows etcd answering pings without a request; with
// PassivePing negative every Ping is a request; a stopped etcd fails Ping
// at once although its last answer is recent.
func TestPassivePing(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t, time.Minute)
	pings := func(r *Registry) float64 {
		before := rangesReceived(t)
		for range 20 {
			if err := r.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}
		return rangesReceived(t) - before
	}

	active := testConfig(t, srv.Endpoint())
	active.PassivePing = -1
	if n := pings(newRegistry(t, active)); n < 20 {
		t.Fatalf("PassivePing<0: 20 pings sent %v Range requests, want at least 20", n)
	}

	cfg := testConfig(t, srv.Endpoint())
	cfg.TTL = 3 * time.Second
	r := newRegistry(t, cfg)
	if err := r.Register(ctx, instance("passive", "p1", 9000)); err != nil {
		t.Fatal(err)
	}
	if n := pings(r); n > 2 {
		t.Fatalf("with a registration: 20 pings sent %v Range requests, want none (a stray one tolerated)", n)
	}

	srv.Stop()
	d := testutil.WaitFor(t, 5*time.Second, "Ping fails once etcd is down", func() string {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if r.Ping(pctx) == nil {
			return "Ping still succeeds"
		}
		return ""
	})
	t.Logf("Ping failed %v after etcd stopped", d)
}
