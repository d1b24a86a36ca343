package etcd

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	if !slices.Equal(got.Endpoints, []string{"127.0.0.1:2379"}) || got.Namespace != "/microservices" ||
		got.TTL != 15*time.Second || got.Timeout != 5*time.Second || got.DialTimeout != 5*time.Second ||
		got.MaxBackoff != 5*time.Second || got.Logger == nil {
		t.Errorf("Config{}.withDefaults() = %+v", got)
	}
	cases := []struct {
		ns, want string
	}{
		{"/svc/", "/svc"},
		{"/a/b", "/a/b"},
		{"/", "/microservices"},
		{"plain", "plain"},
	}
	for _, c := range cases {
		if got := (Config{Namespace: c.ns}).withDefaults().Namespace; got != c.want {
			t.Errorf("Namespace %q -> %q, want %q", c.ns, got, c.want)
		}
	}
	ttls := []struct {
		in   time.Duration
		want int64
	}{
		{time.Millisecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{15 * time.Second, 15},
	}
	for _, c := range ttls {
		if got := ttlSeconds(c.in); got != c.want {
			t.Errorf("ttlSeconds(%v) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := (Config{Client: &clientv3.Client{}}).withDefaults().Endpoints; got != nil {
		t.Errorf("with a Client, Endpoints default to %v, want none", got)
	}
}

// TestCloseLeavesLeasesAndClient: Close stops keepalives without revoking
// (records expire with their lease) and leaves a caller's client open.
func TestCloseLeavesLeasesAndClient(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, "")
	cfg.Endpoints = nil
	cfg.Client = cli
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	a := instance("close", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, r.rec.key(a.Name, a.ID))
	if err != nil {
		t.Fatalf("the caller's client no longer works after Close: %v", err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("record gone right after Close: %v", resp.Kvs)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	expired := testutil.WaitFor(t, 20*time.Second, "record expires with its lease", func() string {
		resp, err := cli.Get(ctx, r.rec.key(a.Name, a.ID))
		if err != nil {
			return err.Error()
		}
		if len(resp.Kvs) != 0 {
			return "still there"
		}
		return ""
	})
	if ttl, err := cli.TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Errorf("lease after expiry: %v, %v", ttl, err)
	}
	t.Logf("record expired %v after Close (TTL %v)", expired, cfg.TTL)
}

// TestNewWhileDown: New does not need etcd.
func TestNewWhileDown(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	start := time.Now()
	r := newRegistry(t, cfg)
	if d := time.Since(start); d > time.Second {
		t.Errorf("New took %v with etcd down", d)
	}
	if err := r.Ping(context.Background()); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable (bounded by Config.Timeout)", err)
	}
}
