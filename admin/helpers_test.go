package admin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func inst(svc, id string, port int) *registry.Instance {
	return &registry.Instance{ID: id, Name: svc, Version: "v1", Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", port)}}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fixture is a chain of two Memory tiers, "etcd" and "consul", with a
// snapshot file, an own registration and two services read: greeter (in
// both tiers, 3 instances) and billing (in etcd only, 2 instances).
type fixture struct {
	etcd, consul *registrytest.Memory
	c            *chain.Chain
}

func newFixture(t testing.TB, opts ...chain.Option) *fixture {
	t.Helper()
	f := &fixture{etcd: registrytest.NewMemoryNamed("etcd"), consul: registrytest.NewMemoryNamed("consul")}
	ctx := context.Background()
	for i := range 3 {
		for _, m := range []*registrytest.Memory{f.etcd, f.consul} {
			if err := m.Register(ctx, inst("greeter", fmt.Sprintf("g%d", i+1), 9000+i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 2 {
		if err := f.etcd.Register(ctx, inst("billing", fmt.Sprintf("b%d", i+1), 9100+i)); err != nil {
			t.Fatal(err)
		}
	}
	store, err := file.OpenStore(filepath.Join(t.TempDir(), "snapshot.db"), file.Config{})
	if err != nil {
		t.Fatal(err)
	}
	base := []chain.Option{chain.WithLogger(quiet()), chain.WithSnapshot(store), chain.WithProbeInterval(10 * time.Millisecond),
		chain.WithFailureThreshold(1), chain.WithFailbackAfter(10 * time.Millisecond), chain.WithFlushInterval(5 * time.Millisecond)}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: f.etcd}, {Name: "consul", Registry: f.consul}}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	t.Cleanup(func() {
		c.Close()
		store.Close()
	})
	if err := c.Register(ctx, inst("checkout", "web-1", 8080)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"greeter", "billing"} {
		if _, err := c.GetService(ctx, s); err != nil {
			t.Fatalf("GetService(%s): %v", s, err)
		}
	}
	return f
}

// etcdDown takes the etcd tier down and waits until the chain has failed
// greeter over to consul.
func (f *fixture) etcdDown(t *testing.T) {
	t.Helper()
	f.etcd.SetAvailable(false)
	testutil.WaitFor(t, testutil.Timeout(t), "greeter from consul, etcd down", func() string {
		st := f.c.Status()
		for _, s := range st.Services {
			if s.Name == "greeter" && s.Source == "consul" && !st.Tiers[0].Up {
				return ""
			}
		}
		return fmt.Sprintf("%+v", st.Services)
	})
}
