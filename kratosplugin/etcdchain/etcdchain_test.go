package etcdchain

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/kratostest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func contribClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// New as Kratos users write it: a client and contrib-style options;
// registration lands in the contrib layout, discovery works, the chain's
// logs reach the Kratos logger, Context ends it.
func TestNew(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := contribClient(t, srv.Endpoint())
	var kl kratostest.Logger
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := New(cli, Context(ctx), Namespace("/kratos-contrib-test"), RegisterTTL(3*time.Second), MaxRetry(5),
		Snapshot(filepath.Join(t.TempDir(), "snap.db")), Logger(&kl))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	si := &kratosregistry.ServiceInstance{ID: "1", Name: "greeter", Version: "v1",
		Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false"}}
	if err := r.Register(context.Background(), si); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(context.Background(), "/kratos-contrib-test/greeter/1")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("contrib key: %v, %v", resp, err)
	}
	lease, err := cli.TimeToLive(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || lease.GrantedTTL != 3 {
		t.Errorf("lease TTL %v, %v; want 3", lease, err)
	}
	testutil.WaitFor(t, 10*time.Second, "discovered", func() string {
		got, err := r.GetService(context.Background(), "greeter")
		if err != nil || len(got) != 1 {
			return fmt.Sprint(got, err)
		}
		return ""
	})
	if !r.Chain.Status().Snapshot.Configured {
		t.Error("snapshot not configured")
	}
	// The chain logs through the Kratos logger (here: its start-up line).
	found := false
	for _, l := range kl.Lines() {
		if strings.Contains(l, "module=regchain") && strings.Contains(l, "msg=chain:") {
			found = true
		}
	}
	if !found {
		t.Errorf("no chain log line in the Kratos logger: %q", kl.Lines())
	}
	cancel()
	testutil.WaitFor(t, 10*time.Second, "closed by Context", testutil.Until(func() bool {
		_, err := r.Chain.GetService(context.Background(), "greeter")
		return errors.Is(err, registry.ErrClosed)
	}))
	if err := r.Close(); err != nil {
		t.Errorf("Close after Context: %v", err)
	}
}
