package etcdtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// TestUsage is the README's example of testing against a real etcd: a
// registry over a server of the test's own survives a crash and restart.
func TestUsage(t *testing.T) {
	// readme:begin etcdtest
	srv := etcdtest.Start(t) // a real etcd on loopback, stopped when the test ends
	r, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint()}, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A crash: connections cut, new ones refused until Start, which brings
	// the server back at the same address with the same data.
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// readme:end etcdtest
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &registry.Instance{ID: "u1", Name: "usage", Endpoints: []string{"grpc://127.0.0.1:9000"}}
	if err := r.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the registration is served after the restart", func() string {
		got, err := r.GetService(ctx, "usage")
		if err != nil || !registry.EqualInstances(got, []*registry.Instance{in}) {
			return "not yet"
		}
		return ""
	})
}
