package etcd

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// RegisterTTL puts the record on a lease of its own TTL, kept by the
// re-grants after the lease is lost; Register uses Config.TTL; a second
// registration keeps the first one's lease.
func TestRegisterTTLLease(t *testing.T) {
	srv := shared.Server(t)
	cfg := testConfig(t, srv.Endpoint()) // TTL 2s
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cli := newClient(t, srv.Endpoint())
	granted := func(name, id string) int64 {
		t.Helper()
		resp, err := cli.Get(ctxT(t, 5*time.Second), r.rec.key(name, id))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s/%s: %v, %v", name, id, resp, err)
		}
		ttl, err := cli.TimeToLive(ctxT(t, 5*time.Second), clientv3.LeaseID(resp.Kvs[0].Lease))
		if err != nil {
			t.Fatalf("lease of %s/%s: %v", name, id, err)
		}
		return ttl.GrantedTTL
	}
	long, plain := instance("svc", "long", 1), instance("svc", "plain", 2)
	if err := r.RegisterTTL(ctxT(t, 5*time.Second), long, 7*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctxT(t, 5*time.Second), plain); err != nil {
		t.Fatal(err)
	}
	if g, p := granted("svc", "long"), granted("svc", "plain"); g != 7 || p != 2 {
		t.Errorf("lease TTLs %d and %d, want 7 (RegisterTTL) and 2 (Config.TTL)", g, p)
	}
	if err := r.RegisterTTL(ctxT(t, 5*time.Second), long, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if g := granted("svc", "long"); g != 7 {
		t.Errorf("after a second registration: lease TTL %d, want the first one's 7", g)
	}
	// The lease revoked by someone else: the keeper grants a new one, of
	// the registration's TTL.
	resp, err := cli.Get(ctxT(t, 5*time.Second), r.rec.key("svc", "long"))
	if err != nil {
		t.Fatal(err)
	}
	old := resp.Kvs[0].Lease
	if _, err := cli.Revoke(ctxT(t, 5*time.Second), clientv3.LeaseID(old)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the record back on a new lease", func() string {
		resp, err := cli.Get(ctxT(t, 5*time.Second), r.rec.key("svc", "long"))
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == old {
			return "not yet"
		}
		return ""
	})
	if g := granted("svc", "long"); g != 7 {
		t.Errorf("re-granted lease TTL %d, want 7", g)
	}
}
