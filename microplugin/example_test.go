package microplugin_test

import (
	"context"
	"errors"
	"fmt"

	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/registry/registrytest"
)

// Any regchain registry serves go-micro: a backend, the chain, or the
// in-memory reference used here. In a service:
//
//	micro.NewService(micro.Name("greeter"), micro.Registry(microplugin.New(chain)))
func Example() {
	backend := registrytest.NewMemory()
	defer backend.Close()
	reg := microplugin.New(backend)

	w, _ := reg.Watch(mreg.WatchService("greeter"))
	defer w.Stop()

	reg.Register(&mreg.Service{
		Name:      "greeter",
		Version:   "1.0.0",
		Metadata:  map[string]string{"team": "a"},
		Endpoints: []*mreg.Endpoint{{Name: "Greeter.Hello"}},
		Nodes:     []*mreg.Node{{Id: "greeter-1", Address: "10.0.0.1:9000", Metadata: map[string]string{"transport": "http"}}},
	})
	r, _ := w.Next()
	fmt.Println(r.Action, r.Service.Name, r.Service.Nodes[0].Id)

	// What the backend holds: one instance per node.
	ins, _ := backend.GetService(context.Background(), "greeter")
	fmt.Println(ins[0], ins[0].Endpoints)

	// What go-micro reads back: the same service.
	svcs, _ := reg.GetService("greeter")
	fmt.Println(svcs[0].Version, svcs[0].Metadata, svcs[0].Endpoints[0].Name, svcs[0].Nodes[0].Address)

	// go-micro's server deregisters with the bare node.
	reg.Deregister(&mreg.Service{Name: "greeter", Nodes: []*mreg.Node{{Id: "greeter-1"}}})
	r, _ = w.Next()
	fmt.Println(r.Action, r.Service.Nodes[0].Id)
	_, err := reg.GetService("greeter")
	fmt.Println(errors.Is(err, mreg.ErrNotFound))
	// Output:
	// create greeter greeter-1
	// greeter/greeter-1@1.0.0 [http://10.0.0.1:9000]
	// 1.0.0 map[team:a] Greeter.Hello 10.0.0.1:9000
	// delete greeter-1
	// true
}

func ExampleFactory() {
	backend := registrytest.NewMemory()
	defer backend.Close()
	// With go-micro's command line: cmd.DefaultRegistries[microplugin.Name] = newRegistry
	newRegistry := microplugin.Factory(backend)
	fmt.Println(newRegistry())
	// Output: regchain
}

func ExampleToInstances() {
	_, err := microplugin.ToInstances(&mreg.Service{Name: "greeter", Nodes: []*mreg.Node{{Id: "a b", Address: "10.0.0.1:9000"}}})
	fmt.Println(err)
	// Output: microplugin: service "greeter": node: registry: invalid: instance id "a b" has ' ' at byte 1 (allowed: letters, digits, '.', '_', '-', ':')
}
