package kratosplugin_test

import (
	"context"
	"fmt"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	"github.com/go-kratos/kratos/v2/selector"
	"github.com/go-kratos/kratos/v2/selector/wrr"
	"github.com/go-kratos/kratos/v2/transport/grpc"
	"github.com/go-kratos/kratos/v2/transport/http"

	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry/registrytest"
)

// Every Kratos client of the process sends its calls to the nearest
// answering instances (the client's zone, then its region, then anywhere,
// skipping instances whose calls fail), and retries elsewhere what is safe
// to retry. The Selector's own picks are shown without servers: an
// instance in the client's zone and one in another region.
func ExampleNewSelector() {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	defer mem.Close()
	reg := kratosplugin.New(mem)

	if err := dialNearest(ctx, reg); err != nil {
		fmt.Println(err)
		return
	}
	defer selector.SetGlobalSelector(wrr.NewBuilder())

	s := selector.GlobalSelector().Build()
	node := func(addr, zone, region string) selector.Node {
		return selector.NewNode("http", addr, &kratosregistry.ServiceInstance{Name: "greeter",
			Metadata: map[string]string{locality.KeyZone: zone, locality.KeyRegion: region}})
	}
	s.Apply([]selector.Node{node("10.1.0.1:8000", "us-1a", "us-1"), node("10.0.0.1:8000", "eu-1a", "eu-1")})
	for range 3 {
		n, done, _ := s.Select(ctx)
		fmt.Println(n.Address())
		done(ctx, selector.DoneInfo{})
	}
	// Output:
	// 10.0.0.1:8000
	// 10.0.0.1:8000
	// 10.0.0.1:8000
}

// dialNearest is the setup of ExampleNewSelector: the global selector and
// two clients with Retry.
func dialNearest(ctx context.Context, reg *kratosplugin.Registry) error {
	// readme:begin kratos-nearest
	selector.SetGlobalSelector(kratosplugin.NewSelector(kratosplugin.SelectorConfig{
		Self: locality.Locality{Zone: "eu-1a", Region: "eu-1"}, // or REGCHAIN_ZONE, REGCHAIN_REGION
	}))
	retry := kratosplugin.Retry(kratosplugin.RetryConfig{
		Idempotent: []string{"/helloworld.Greeter/"}, // gRPC methods safe to send twice
	})
	conn, err := grpc.DialInsecure(ctx, grpc.WithEndpoint("discovery:///greeter"), grpc.WithDiscovery(reg),
		grpc.WithMiddleware(retry))
	if err != nil {
		return err
	}
	defer conn.Close()
	client, err := http.NewClient(ctx, http.WithEndpoint("discovery:///greeter"), http.WithDiscovery(reg),
		http.WithMiddleware(retry))
	if err != nil {
		return err
	}
	defer client.Close()
	// readme:end kratos-nearest
	return nil
}
