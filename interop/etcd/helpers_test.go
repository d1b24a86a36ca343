package etcdinterop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// newNamespace returns a namespace no other test uses.
func newNamespace() string {
	var b [6]byte
	rand.Read(b[:])
	return "/regchain-interop-" + hex.EncodeToString(b[:])
}

// testConfig is a configuration with short leases, timeouts and backoffs,
// a namespace of the test's own and logs to the test's output.
func testConfig(t *testing.T, endpoint string) etcd.Config {
	return etcd.Config{
		Endpoints:  []string{endpoint},
		Namespace:  newNamespace(),
		TTL:        2 * time.Second,
		Timeout:    time.Second,
		MaxBackoff: 500 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// key is the etcd key of an instance, as documented by package etcd:
// <namespace>/<name>/<id>.
func key(namespace, name, id string) string { return namespace + "/" + name + "/" + id }

// newRegistry returns a registry closed when the test ends.
func newRegistry(t *testing.T, cfg etcd.Config) *etcd.Registry {
	t.Helper()
	r, err := etcd.New(cfg)
	if err != nil {
		t.Fatalf("etcd.New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// newClient returns a plain etcd client, closed when the test ends.
func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// watchReader watches name on r until the test ends (testutil.Reader,
// checking the adapter's Source).
func watchReader(t *testing.T, r registry.Registry, name string) *testutil.Reader {
	return testutil.WatchReader(t, r, name, etcd.Source)
}
