package regconfig_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/static"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

func TestOpenSingleBackend(t *testing.T) {
	c, err := regconfig.Parse("etcd://127.0.0.1:1?namespace=/x&timeout=100ms")
	if err != nil {
		t.Fatal(err)
	}
	r, err := regconfig.Open(c, regconfig.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok := r.(*etcd.Registry); !ok {
		t.Errorf("Open of one backend returned %T, want *etcd.Registry", r)
	}
}

// etcd, then the static list, with a snapshot: the chain a config
// describes, working; with etcd down, the static tier still answers for a
// service the process never saw.
func TestOpenChain(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	cfg := regconfig.Config{
		Backends: []regconfig.Backend{{Type: "etcd", Endpoints: []string{srv.Endpoint()}, Namespace: "/regconfig-test",
			TTL: regconfig.Duration(2 * time.Second), Timeout: regconfig.Duration(time.Second)}},
		Snapshot: regconfig.Snapshot{Path: filepath.Join(dir, "snap.db")},
		Static: regconfig.Static{Instances: []*registry.Instance{
			{ID: "s1", Name: "fallback", Endpoints: []string{"grpc://10.9.0.1:9000"}},
		}},
		Chain: regconfig.ChainConfig{ProbeInterval: regconfig.Duration(100 * time.Millisecond), CallTimeout: regconfig.Duration(time.Second)},
	}
	r, err := regconfig.Open(cfg, regconfig.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	ch, ok := r.(*regconfig.Chain)
	if !ok {
		t.Fatalf("Open returned %T, want *regconfig.Chain", r)
	}
	defer ch.Close()
	ctx := context.Background()
	in := &registry.Instance{ID: "a", Name: "greeter", Endpoints: []string{"grpc://10.0.0.1:9000"}}
	if err := ch.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "greeter from etcd", func() string {
		ins, err := ch.GetService(ctx, "greeter")
		if err != nil || len(ins) != 1 {
			return "not yet"
		}
		return ""
	})
	srv.Stop()
	testutil.WaitFor(t, 10*time.Second, "etcd tier down", testutil.Until(func() bool { return !ch.Status().Tiers[0].Up }))
	w, err := ch.Watch(ctx, "fallback")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	u, err := w.Next()
	if err != nil || u.Source != static.Source || len(u.Instances) != 1 {
		t.Fatalf("fallback during the outage: %+v, %v; want the static instance", u, err)
	}
	if err := ch.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := ch.GetService(ctx, "greeter"); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		cfg  regconfig.Config
		want string
	}{
		{regconfig.Config{Backends: []regconfig.Backend{{Type: "etcd", TLS: regconfig.TLS{CAFile: filepath.Join(dir, "none.pem")}}}}, "backends[0].tls.ca_file"},
		{regconfig.Config{Backends: []regconfig.Backend{{Type: "etcd"}}, Static: regconfig.Static{File: filepath.Join(dir, "none.json")}}, "regconfig: static:"},
		{regconfig.Config{Backends: []regconfig.Backend{{Type: "etcd"}}, Snapshot: regconfig.Snapshot{Path: dir}}, "snapshot.path"},
	}
	for _, c := range cases {
		r, err := regconfig.Open(c.cfg, regconfig.WithLogger(quiet()))
		if err == nil {
			r.Close()
			t.Errorf("Open(%s) succeeded, want %q", c.cfg, c.want)
			continue
		}
		if got := err.Error(); !contains(got, c.want) {
			t.Errorf("Open(%s) = %q, want it to contain %q", c.cfg, got, c.want)
		}
	}
}
