package microservice_test

import (
	"fmt"

	"go-micro.dev/v4"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/microplugin/etcdchain"
	"github.com/regchain/regchain/microplugin/microservice"
	"github.com/regchain/regchain/registry/registrytest"
)

// A go-micro service whose client calls the nearest answering nodes and
// retries elsewhere what is safe, over an etcd-backed chain that is closed
// when the service stops.
func Example() {
	// readme:begin micro-nearest
	reg := etcdchain.NewRegistry(mreg.Addrs("10.0.0.1:2379"))
	svc := micro.NewService(
		micro.Name("greeter"),
		micro.Registry(reg),
		micro.Metadata(map[string]string{"zone": "eu-1a", "region": "eu-1"}), // this node's place
		microservice.Nearest(microservice.Config{
			Self:  locality.Locality{Zone: "eu-1a", Region: "eu-1"}, // or REGCHAIN_ZONE, REGCHAIN_REGION
			Retry: microservice.RetryConfig{Idempotent: []string{"Greeter.Hello"}},
		}),
		microservice.CloseOnStop(), // the chain and its etcd client end with the service
	)
	// readme:end micro-nearest
	_ = svc
}

// The selector's picks, without servers: a node in the client's zone, one
// in its region, and what happens when the zone's node fails.
func ExampleNewSelector() {
	mem := registrytest.NewMemory()
	defer mem.Close()
	reg := microplugin.New(mem)
	for _, n := range []struct{ id, zone string }{{"a1", "eu-1a"}, {"b1", "eu-1b"}} {
		reg.Register(&mreg.Service{Name: "greeter", Version: "1", Nodes: []*mreg.Node{{
			Id: n.id, Address: n.id + ":9000",
			Metadata: map[string]string{locality.KeyZone: n.zone, locality.KeyRegion: "eu-1"},
		}}})
	}
	sel := microservice.NewSelector(selector.Registry(reg),
		microservice.WithLocality(locality.Locality{Zone: "eu-1a", Region: "eu-1"}))
	defer sel.Close()

	next, _ := sel.Select("greeter")
	first, _ := next()
	fmt.Println("first attempt:", first.Id)
	retry, _ := next() // a retry of the same call goes elsewhere
	fmt.Println("retry:", retry.Id)
	for range 3 { // three failed attempts in a row eject a1
		sel.Mark("greeter", first, fmt.Errorf(`{"id":"go.micro.client","code":500,"detail":"connection error: refused"}`))
	}
	next, _ = sel.Select("greeter")
	n, _ := next()
	fmt.Println("a1 ejected:", n.Id)
	// Output:
	// first attempt: a1
	// retry: b1
	// a1 ejected: b1
}
