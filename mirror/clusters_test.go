package mirror_test

import (
	"context"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/mirror"
)

func startCluster(t *testing.T) *embedetcd.Cluster {
	t.Helper()
	c, err := embedetcd.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func clusterRegistry(t *testing.T, c *embedetcd.Cluster) *etcd.Registry {
	t.Helper()
	r, err := etcd.New(etcd.Config{Endpoints: c.Endpoints(), Namespace: "/mirror", TTL: etcdTTL,
		MaxBackoff: 500 * time.Millisecond, Timeout: 2 * time.Second, DialTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestEtcdClustersTwoWayLeaderKilled: two 3-member etcd clusters mirrored
// both ways; the leader of each is killed in turn. The mirrored records
// stay on the other side (the mirror's leases live through the election)
// and changes keep flowing both ways.
func TestEtcdClustersTwoWayLeaderKilled(t *testing.T) {
	a, b := startCluster(t), startCluster(t)
	appA, appB := clusterRegistry(t, a), clusterRegistry(t, b)
	start(t, mirror.Config{Source: clusterRegistry(t, a), Target: clusterRegistry(t, b), Origin: "dc-a", MaxBackoff: 500 * time.Millisecond})
	start(t, mirror.Config{Source: clusterRegistry(t, b), Target: clusterRegistry(t, a), Origin: "dc-b", MaxBackoff: 500 * time.Millisecond})
	register(t, appA, inst("svc", "a1", 1))
	register(t, appB, inst("svc", "b1", 2))
	waitState(t, appA, "svc", "a1<> b1<dc-b>")
	waitState(t, appB, "svc", "a1<dc-a> b1<>")
	for _, tc := range []struct {
		name    string
		c       *embedetcd.Cluster
		id      string
		wantA   string
		wantB   string
		writeTo *etcd.Registry
	}{
		{"leader of A killed", a, "a2", "a1<> a2<> b1<dc-b>", "a1<dc-a> a2<dc-a> b1<>", appA},
		{"leader of B killed", b, "b2", "a1<> a2<> b1<dc-b> b2<dc-b>", "a1<dc-a> a2<dc-a> b1<> b2<>", appB},
	} {
		leader := tc.c.Leader()
		tc.c.Member(leader).Stop()
		register(t, tc.writeTo, inst("svc", tc.id, 3))
		start := time.Now()
		waitState(t, appA, "svc", tc.wantA)
		waitState(t, appB, "svc", tc.wantB)
		t.Logf("%s: a registration made after the kill is on both sides %v later", tc.name, time.Since(start).Round(time.Millisecond))
		if err := tc.c.Member(leader).Start(); err != nil {
			t.Fatal(err)
		}
	}
	lost, lingering := diff(t, appA, appB, "svc")
	if len(lost)+len(lingering) > 0 {
		t.Errorf("lost %v lingering %v", lost, lingering)
	}
}
