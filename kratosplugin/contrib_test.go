package kratosplugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2/log"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// kvLogger is a Kratos logger keeping each line as "LEVEL k=v ...".
type kvLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *kvLogger) Log(level log.Level, kv ...any) error {
	var b strings.Builder
	b.WriteString(level.String())
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *kvLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func TestSlogHandlerToKratos(t *testing.T) {
	var kl kvLogger
	sl := slog.New(SlogHandler(&kl)).With("registry", "etcd").WithGroup("g")
	sl.Warn("lease lost", "key", "/a/b", "error", errors.New("boom"))
	sl.Debug("detail")
	got := kl.all()
	want := []string{"WARN msg=lease lost registry=etcd g.key=/a/b g.error=boom", "DEBUG msg=detail registry=etcd"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("lines\n got %q\nwant %q", got, want)
	}
}

func contribClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// NewEtcd as Kratos users write it: a client and contrib-style options;
// registration lands in the contrib layout, discovery works, the chain's
// logs reach the Kratos logger, Context ends it.
func TestNewEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := contribClient(t, srv.Endpoint())
	var kl kvLogger
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := NewEtcd(cli, Context(ctx), Namespace("/kratos-contrib-test"), RegisterTTL(3*time.Second), MaxRetry(5),
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
	for _, l := range kl.all() {
		if strings.Contains(l, "module=regchain") && strings.Contains(l, "msg=chain:") {
			found = true
		}
	}
	if !found {
		t.Errorf("no chain log line in the Kratos logger: %q", kl.all())
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
