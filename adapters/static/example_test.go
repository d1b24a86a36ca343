package static_test

import (
	"context"
	"fmt"

	"github.com/regchain/regchain/adapters/static"
	"github.com/regchain/regchain/registry"
)

func Example() {
	// readme:begin static
	r, err := static.New(static.Config{Instances: []*registry.Instance{
		{ID: "1", Name: "greeter", Endpoints: []string{"grpc://10.0.0.1:9000"}},
		{ID: "2", Name: "greeter", Endpoints: []string{"grpc://10.0.0.2:9000"}},
	}})
	// readme:end static
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	w, _ := r.Watch(context.Background(), "greeter")
	defer w.Stop()
	u, _ := w.Next()
	fmt.Println(u.Source, len(u.Instances), u.Instances[0].Endpoints[0])
	// Output: static 2 grpc://10.0.0.1:9000
}
