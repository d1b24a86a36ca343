package grpcbalancer_test

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/regchain/regchain/grpcbalancer"
	"github.com/regchain/regchain/locality"
)

// A resolver of your own: attach each endpoint's place and select the
// policy in the service config. (grpcresolver does both by itself.)
func Example() {
	r := manual.NewBuilderWithScheme("example")
	r.InitialState(resolver.State{Endpoints: []resolver.Endpoint{
		grpcbalancer.SetLocality(resolver.Endpoint{Addresses: []resolver.Address{{Addr: "10.0.1.5:9000"}}},
			locality.Locality{Zone: "eu-1a", Region: "eu-1"}),
		grpcbalancer.SetLocality(resolver.Endpoint{Addresses: []resolver.Address{{Addr: "10.0.2.5:9000"}}},
			locality.Locality{Zone: "eu-1b", Region: "eu-1"}),
	}})
	conn, err := grpc.NewClient("example:///orders", grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(grpcbalancer.ServiceConfig(grpcbalancer.Config{Zone: "eu-1a", Region: "eu-1"})),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println(grpcbalancer.ServiceConfig(grpcbalancer.Config{Zone: "eu-1a", Region: "eu-1"}))
	// Output: {"loadBalancingConfig":[{"regchain_locality":{"zone":"eu-1a","region":"eu-1"}}]}
}
