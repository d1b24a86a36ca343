package consul_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/registry"
)

// Register an instance with the local agent, discover it and follow its
// changes. (Not run: it needs an agent.)
func Example() {
	r, err := consul.New(consul.Config{
		Address: "127.0.0.1:8500",
		Token:   "", // CONSUL_HTTP_TOKEN when empty
		TTL:     10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.Register(ctx, &registry.Instance{
		ID:        "helloworld-1",
		Name:      "helloworld",
		Version:   "v1.0.0",
		Metadata:  map[string]string{"zone": "eu-1"},
		Endpoints: []string{"grpc://10.0.0.1:9000", "http://10.0.0.1:8000"},
	})
	switch {
	case errors.Is(err, consul.ErrPermissionDenied):
		log.Fatalf("fix the ACL token: %v", err)
	case err != nil:
		log.Fatal(err)
	}

	w, err := r.Watch(context.Background(), "helloworld")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	u, err := w.Next()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Service, len(u.Instances), "instance(s) at index", u.Revision)

	for _, s := range r.Registrations() {
		fmt.Println(s.Instance, "live:", s.Live)
	}
}

// Config values out of range are refused before anything is contacted.
func ExampleNew() {
	_, err := consul.New(consul.Config{TTL: 100 * time.Millisecond})
	fmt.Println(err)
	fmt.Println(errors.Is(err, registry.ErrInvalid))
	// Output:
	// consul: registry: invalid: TTL 100ms is shorter than 1s
	// true
}
