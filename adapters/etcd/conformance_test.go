package etcd

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestConformance(t *testing.T) {
	srv := shared.Server(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, err := New(testConfig(t, srv.Endpoint()))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return r
	})
}

// A user whose role may only read the namespace: etcd refuses its writes
// (permission denied), which wrap ErrInvalid and are not retried.
func TestConformanceReadOnly(t *testing.T) {
	srv := etcdtest.Start(t) // auth on: a server of its own
	cfg := testConfig(t, srv.Endpoint())
	cli := newClient(t, srv.Endpoint())
	ctx := ctxT(t, 30*time.Second)
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "reader", cfg.Namespace+"/", clientv3.GetPrefixRangeEnd(cfg.Namespace+"/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "reader", "readerpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "reader", "reader"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("set up etcd auth: %v", err)
		}
	}
	registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry {
		cfg.Username, cfg.Password = "reader", "readerpw"
		r, err := New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return r
	})
}
