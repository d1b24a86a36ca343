package kratosplugin_test

import (
	"context"
	"testing"
	"time"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/kratosplugin"

	"github.com/regchain/regchain/internal/testsupport/kratostest"
)

// TestDialWhileEtcdUnreachable creates Kratos clients whose registry cannot
// reach etcd at all (a partition: connections hang, nothing answers), over
// the bare etcd adapter and over a chain. Kratos' gRPC dial gives watcher
// creation 2 s; the plugin's Watch must return well within that, and the
// clients must reach the service once the partition heals.
func TestDialWhileEtcdUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	const ns = "/unreachable"
	serverChain, _ := newChain(t, newEtcd(t, srv.Endpoint(), ns), "")
	a := kratostest.StartApp(t, kratosplugin.New(serverChain), "greeter", "one")
	eventually(t, "app registered", func() string {
		if got := instancesOf(kratosplugin.New(serverChain), "greeter"); got != "["+wantOf(a)+"]" {
			return got
		}
		return ""
	})

	for _, tc := range []struct {
		name string
		new  func(t *testing.T, endpoint string) kratosregistry.Discovery
	}{
		{"etcd adapter", func(t *testing.T, endpoint string) kratosregistry.Discovery {
			return kratosplugin.New(newEtcd(t, endpoint, ns))
		}},
		{"chain", func(t *testing.T, endpoint string) kratosregistry.Discovery {
			c, _ := newChain(t, newEtcd(t, endpoint, ns), "")
			return kratosplugin.New(c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, err := faultproxy.Start(srv.Endpoint())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			proxy.Partition()
			d := tc.new(t, proxy.Addr())

			start := time.Now()
			w, err := d.Watch(ctxT(t), "greeter")
			if err != nil {
				t.Fatalf("Watch with etcd unreachable: %v", err)
			}
			w.Stop()
			if took := time.Since(start); took > time.Second {
				t.Fatalf("Watch with etcd unreachable took %v; Kratos' gRPC dial allows 2s", took)
			}

			// Kratos' own dial, with its default 2 s watcher-creation limit.
			conn, err := kgrpc.DialInsecure(context.Background(),
				kgrpc.WithEndpoint("discovery:///greeter"),
				kgrpc.WithDiscovery(d),
				kgrpc.WithPrintDiscoveryDebugLog(false),
			)
			if err != nil {
				t.Fatalf("dial with etcd unreachable: %v", err)
			}
			t.Cleanup(func() { conn.Close() })

			proxy.Heal()
			kratostest.CallsReach(t, kratostest.GRPCCall(conn), a.GRPCAddr)
		})
	}
}
