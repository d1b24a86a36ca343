package registry_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func ExampleValidate() {
	err := registry.Validate(&registry.Instance{ID: "1", Name: "greeter", Endpoints: []string{"10.0.0.1:9000"}})
	fmt.Println(errors.Is(err, registry.ErrInvalid))
	fmt.Println(err)
	// Output:
	// true
	// registry: invalid: greeter/1: endpoint "10.0.0.1:9000" is not a URL with a scheme and a host (like grpc://10.0.0.1:9000): first path segment in URL cannot contain colon
}

// Any Registry — a backend, the chain, or the in-memory reference used here —
// is used the same way.
func Example() {
	ctx := context.Background()
	var r registry.Registry = registrytest.NewMemory()
	defer r.Close()

	w, _ := r.Watch(ctx, "greeter")
	defer w.Stop()
	u, _ := w.Next() // the current state, at once
	fmt.Println(u.Service, len(u.Instances), u.Source)

	r.Register(ctx, &registry.Instance{ID: "g1", Name: "greeter", Version: "v1", Endpoints: []string{"grpc://10.0.0.1:9000"}})
	u, _ = w.Next() // the complete new set
	fmt.Println(u.Service, u.Instances[0], u.Instances[0].Endpoints)

	ins, _ := r.GetService(ctx, "greeter")
	fmt.Println(len(ins))
	_, err := r.GetService(ctx, "nobody")
	fmt.Println(errors.Is(err, registry.ErrNotFound))
	// Output:
	// greeter 0 memory
	// greeter greeter/g1@v1 [grpc://10.0.0.1:9000]
	// 1
	// true
}
