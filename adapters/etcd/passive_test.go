package etcd

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
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

// TestPingWhileFailing: once the client's connection is failing (etcd
// stopped), Ping sends no request, even with PassivePing negative, and
// answers ErrUnavailable at its deadline; a Ping waiting when etcd comes
// back succeeds (it waited for the connection, not for a request's
// answer that could not come).
func TestPingWhileFailing(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx := ctxT(t, time.Minute)
	var sent atomic.Int64
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{srv.Endpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				sent.Add(1)
				return invoker(ctx, method, req, reply, cc, opts...)
			})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	cfg := testConfig(t, "")
	cfg.Endpoints, cfg.Client, cfg.PassivePing = nil, client, -1
	r := newRegistry(t, cfg)
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	srv.Stop()
	testutil.WaitFor(t, 30*time.Second, "the client's connection fails", func() string {
		if st, bad := r.c.failing(); !bad {
			return "connection " + st.String()
		}
		return ""
	})
	before := sent.Load()
	for range 5 {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := r.Ping(pctx)
		cancel()
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("Ping while failing: %v, want ErrUnavailable", err)
		}
	}
	// Between two reconnection attempts gRPC may report the connection IDLE
	// for a moment; a ping then sends its request (as it must: that is also
	// how a channel gone idle is woken). One such stray is tolerated; a
	// ping per attempt is not.
	if n := sent.Load() - before; n > 1 {
		t.Fatalf("5 pings while the connection failed sent %d requests, want none (one stray tolerated)", n)
	}

	// A Ping waiting for the connection when etcd comes back succeeds once
	// the connection is ready (gRPC's reconnection backoff decides when).
	if _, bad := r.c.failing(); !bad {
		t.Log("the connection left TRANSIENT_FAILURE before the waiting Ping started")
	}
	done := make(chan error, 1)
	go func() {
		// Ping's wait, without Config.Timeout's bound (gRPC's backoff may
		// be longer): it must end with the connection ready.
		if err := r.c.awaitConnection(ctx); err != nil {
			done <- err
			return
		}
		done <- r.Ping(ctx)
	}()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Ping waiting for the connection when etcd came back: %v", err)
	}
}
