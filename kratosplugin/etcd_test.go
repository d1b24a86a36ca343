package kratosplugin_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/kratosplugin"
)

// quietLogger drops the adapters' and chain's logs: the tests stop etcd on
// purpose and check outcomes, not log lines.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// newEtcd returns regchain's etcd adapter with test-sized TTL and timeouts.
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

// newEtcdClient returns a plain etcd client for looking at the server.
func newEtcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestRegisterKeepaliveOutlivesContext registers through the plugin (over a
// chain over etcd) with a context that ends right after, as Kratos' App does
// with its 10 s registrar context, and checks that the record outlives
// several lease TTLs: the keepalive runs on the registry's own context.
func TestRegisterKeepaliveOutlivesContext(t *testing.T) {
	srv := etcdtest.Start(t)
	const ns = "/keepalive"
	c, _ := newChain(t, newEtcd(t, srv.Endpoint(), ns), "") // TTL 2s
	p := kratosplugin.New(c)
	cli := newEtcdClient(t, srv.Endpoint())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := p.Register(ctx, kratosInstance("a", 9000)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	cancel()
	cancelled := time.Now()

	// The lease would expire 2 s after the last keepalive (etcd checks
	// expiry every 500 ms); watch the record for two TTLs and a margin.
	key := ns + "/greeter/a"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(cancelled) < 5*time.Second {
		resp, err := cli.Get(ctxT(t), key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("%s gone %v after the register ctx was cancelled", key, time.Since(cancelled).Round(time.Millisecond))
		}
		<-tick.C
	}
	if err := p.Deregister(ctxT(t), kratosInstance("a", 9000)); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	resp, err := cli.Get(ctxT(t), key)
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("after Deregister: %d records, %v; want none", len(resp.Kvs), err)
	}
}
