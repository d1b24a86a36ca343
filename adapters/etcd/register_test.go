package etcd

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

// TestUpdateInPlace: registering the same instance with new data keeps the
// lease and replaces the record.
func TestUpdateInPlace(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	r := newRegistry(t, testConfig(t, srv.Endpoint()))
	ctx := ctxT(t, time.Minute)
	a := instance("inplace", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	key := r.rec.key(a.Name, a.ID)
	before, err := cli.Get(ctx, key)
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", before, err)
	}
	a2 := a.Clone()
	a2.Metadata["weight"] = "50"
	if err := r.Register(ctx, a2); err != nil {
		t.Fatal(err)
	}
	after, err := cli.Get(ctx, key)
	if err != nil || len(after.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", after, err)
	}
	if after.Kvs[0].Lease != before.Kvs[0].Lease {
		t.Errorf("lease changed from %x to %x on update", before.Kvs[0].Lease, after.Kvs[0].Lease)
	}
	if got, want := string(after.Kvs[0].Value), mustMarshal(t, a2); got != want {
		t.Errorf("record = %s, want %s", got, want)
	}
	// An identical Register writes nothing.
	if err := r.Register(ctx, a2.Clone()); err != nil {
		t.Fatal(err)
	}
	again, err := cli.Get(ctx, key)
	if err != nil || len(again.Kvs) != 1 || again.Kvs[0].ModRevision != after.Kvs[0].ModRevision {
		t.Errorf("identical Register rewrote the key: %v, %v", again, err)
	}
	regs := r.Registrations()
	if len(regs) != 1 || !regs[0].Live || !regs[0].Instance.Equal(a2) || regs[0].Attempts != 0 || regs[0].LastError != nil {
		t.Errorf("Registrations = %+v, want a2 live", regs)
	}
}

// TestDeregisterRevokes: Deregister deletes the key and revokes the lease.
func TestDeregisterRevokes(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	r := newRegistry(t, testConfig(t, srv.Endpoint()))
	ctx := ctxT(t, time.Minute)
	a := instance("dereg", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, r.rec.key(a.Name, a.ID))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", resp, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	if err := r.Deregister(ctx, &registry.Instance{Name: a.Name, ID: a.ID}); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctx, r.rec.key(a.Name, a.ID)); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("after Deregister: Get = %v, %v; want no key", resp.Kvs, err)
	}
	if ttl, err := cli.TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Errorf("after Deregister: lease TTL = %v, %v; want -1 (revoked)", ttl, err)
	}
	if regs := r.Registrations(); len(regs) != 0 {
		t.Errorf("Registrations after Deregister = %+v, want none", regs)
	}
}
