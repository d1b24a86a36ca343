package kratosinterop

import (
	"encoding/json"
	"testing"

	contribetcd "github.com/go-kratos/kratos/contrib/registry/etcd/v2"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/kratosplugin"

	"github.com/regchain/regchain/internal/testsupport/kratostest"
)

// TestInteropContribEtcd runs Kratos apps registered by Kratos' own contrib
// etcd registry next to apps registered through the plugin, in one etcd
// namespace, and calls each with clients of the other kind.
func TestInteropContribEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	const ns = "/interop"
	contrib := contribetcd.New(newEtcdClient(t, srv.Endpoint()), contribetcd.Namespace(ns))
	c := newChain(t, newEtcd(t, srv.Endpoint(), ns))
	plugin := kratosplugin.New(c)

	t.Run("contrib app, plugin client", func(t *testing.T) {
		a := kratostest.StartApp(t, contrib, "by-contrib", "c1")
		checkReachable(t, plugin, a, "by-contrib")
		sameRecords(t, "by-contrib", contrib, plugin)
	})
	t.Run("plugin app, contrib client", func(t *testing.T) {
		a := kratostest.StartApp(t, plugin, "by-plugin", "p1")
		checkReachable(t, contrib, a, "by-plugin")
		sameRecords(t, "by-plugin", contrib, plugin)
	})
}

// checkReachable calls app a through d over both transports.
func checkReachable(t *testing.T, d kratosregistry.Discovery, a *kratostest.App, name string) {
	t.Helper()
	conn := kratostest.GRPCClient(t, d, name)
	kratostest.CallsReach(t, kratostest.GRPCCall(conn), a.GRPCAddr)
	hc := kratostest.HTTPClient(t, d, name)
	kratostest.CallsReach(t, kratostest.HTTPCall(hc), a.ID)
}

// sameRecords checks that both discoveries return byte-identical JSON for
// name (version and weight included).
func sameRecords(t *testing.T, name string, a, b kratosregistry.Discovery) {
	t.Helper()
	ja, jb := recordsJSON(t, a, name), recordsJSON(t, b, name)
	if ja != jb {
		t.Fatalf("records of %s differ:\ncontrib: %s\nplugin:  %s", name, ja, jb)
	}
	var list []*kratosregistry.ServiceInstance
	if err := json.Unmarshal([]byte(ja), &list); err != nil {
		t.Fatalf("records of %s: %v", name, err)
	}
	if len(list) != 1 || list[0].Version != "v1.0.0" || list[0].Metadata["weight"] != "10" {
		t.Fatalf("records of %s: %s, want one with version v1.0.0 and weight 10", name, ja)
	}
}

func recordsJSON(t *testing.T, d kratosregistry.Discovery, name string) string {
	t.Helper()
	list, err := d.GetService(ctxT(t), name)
	if err != nil {
		t.Fatalf("GetService(%s): %v", name, err)
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
