package etcdchain_test

import (
	"time"

	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/microplugin/etcdchain"
)

// NewRegistry is built the way go-micro's etcd plugin is: from go-micro's
// registry options. Use it with micro.Registry(reg), or put it in go-micro's
// command-line table: cmd.DefaultRegistries["regchain"] = etcdchain.NewRegistry.
func ExampleNewRegistry() {
	// readme:begin micro-newregistry
	reg := etcdchain.NewRegistry(
		mreg.Addrs("10.0.0.1:2379", "10.0.0.2:2379"),
		mreg.Timeout(3*time.Second),
		etcdchain.SnapshotPath("/var/lib/greeter/registry.snapshot"),
	)
	// readme:end micro-newregistry
	defer microplugin.Close(reg)
	_ = reg // micro.NewService(micro.Name("greeter"), micro.Registry(reg))
}
