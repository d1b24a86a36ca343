package kratosinterop

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
)

// waitTimeout bounds every wait for a condition.
const waitTimeout = 20 * time.Second

// quietLogger drops the adapter's and chain's logs: the tests check
// outcomes, not log lines.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newEtcd returns regchain's etcd adapter with test-sized TTL and timeouts,
// closed when the test ends.
func newEtcd(t *testing.T, endpoint, namespace string) *etcd.Registry {
	t.Helper()
	r, err := etcd.New(etcd.Config{
		Endpoints:  []string{endpoint},
		Namespace:  namespace,
		TTL:        2 * time.Second,
		Timeout:    time.Second,
		MaxBackoff: 500 * time.Millisecond,
		Logger:     quietLogger,
	})
	if err != nil {
		t.Fatalf("etcd.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// newEtcdClient returns a plain etcd client, closed when the test ends.
func newEtcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newChain returns a chain over reg as its one tier, with test-sized probe
// and call timings, closed when the test ends.
func newChain(t *testing.T, reg registry.Registry) *chain.Chain {
	t.Helper()
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: reg}},
		chain.WithLogger(quietLogger),
		chain.WithProbeInterval(100*time.Millisecond),
		chain.WithProbeTimeout(500*time.Millisecond),
		chain.WithCallTimeout(time.Second),
		chain.WithFailbackAfter(500*time.Millisecond),
		chain.WithFlushInterval(20*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("chain.New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close chain: %v", err)
		}
	})
	return c
}
