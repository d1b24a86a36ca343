package etcdchain_test

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/kratosplugin/etcdchain"
)

// New reads like Kratos' contrib etcd registry, New(client, opts...), and
// adds the chain's snapshot.
func ExampleNew() {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
	if err != nil {
		return
	}
	defer client.Close()
	// readme:begin kratos-newetcd
	r, err := etcdchain.New(client,
		etcdchain.Namespace("/microservices"),
		etcdchain.RegisterTTL(15*time.Second),
		etcdchain.Snapshot("/var/lib/greeter/registry.snapshot"),
	)
	// readme:end kratos-newetcd
	if err != nil {
		return
	}
	defer r.Close()
	// kratos.New(kratos.Registrar(r)); grpc.WithDiscovery(r)
}
