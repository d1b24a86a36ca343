package kratosplugin_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-kratos/kratos/v2"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	"github.com/go-kratos/kratos/v2/transport/grpc"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/registry/registrytest"
)

// A Kratos app registers through the plugin and a client watches the
// service. In production the registry is a chain (see examples/kratos); the
// in-memory reference registry keeps this example self-contained.
func Example() {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	defer mem.Close()
	reg := kratosplugin.New(mem)

	// What kratos.Registrar(reg) does when the app starts.
	err := reg.Register(ctx, &kratosregistry.ServiceInstance{
		ID:        "greeter-1",
		Name:      "greeter",
		Version:   "v1.0.0",
		Metadata:  map[string]string{"weight": "10"},
		Endpoints: []string{"grpc://10.0.0.1:9000", "http://10.0.0.1:8000"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// What the resolver of grpc.WithDiscovery(reg) does.
	w, err := reg.Watch(ctx, "greeter")
	if err != nil {
		fmt.Println(err)
		return
	}
	list, _ := w.Next() // the current list, at once
	for _, si := range list {
		fmt.Println(si.ID, si.Version, si.Metadata["weight"], si.Endpoints)
	}
	w.Stop()
	_, err = w.Next()
	fmt.Println("resolver loop exits:", errors.Is(err, context.Canceled))

	// Output:
	// greeter-1 v1.0.0 10 [grpc://10.0.0.1:9000 http://10.0.0.1:8000]
	// resolver loop exits: true
}

// Kratos apps and clients over a chain of etcd with a bbolt snapshot as the
// last resort. (Not run: it needs an etcd at 127.0.0.1:2379.)
func Example_chain() {
	et, err := etcd.New(etcd.Config{Endpoints: []string{"127.0.0.1:2379"}})
	if err != nil {
		panic(err)
	}
	defer et.Close()
	store, err := file.OpenStore("/var/lib/greeter/registry-snapshot.db", file.Config{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: et}}, chain.WithSnapshot(store))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	reg := kratosplugin.New(c)

	gs := grpc.NewServer(grpc.Address(":9000"))
	app := kratos.New(kratos.Name("greeter"), kratos.Server(gs), kratos.Registrar(reg))
	go app.Run()
	defer app.Stop()

	conn, err := grpc.DialInsecure(context.Background(),
		grpc.WithEndpoint("discovery:///greeter"), grpc.WithDiscovery(reg))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
}
