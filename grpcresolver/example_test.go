package grpcresolver_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/regchain/regchain/grpcresolver"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func Example() {
	// Any registry.Registry works: a backend, or the chain.
	reg := registrytest.NewMemory()
	defer reg.Close()

	// A server, registered with its grpc endpoint.
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	reg.Register(context.Background(), &registry.Instance{
		ID: "1", Name: "greeter", Endpoints: []string{"grpc://" + lis.Addr().String()},
	})

	// A client resolving "regchain:///greeter" through the registry. The
	// resolver sets the service config: locality-aware balancing with
	// outlier ejection (round_robin for instances without a zone or
	// region) and a retry policy for calls whose connection dies.
	// readme:begin grpc
	conn, err := grpc.NewClient("regchain:///greeter",
		grpc.WithResolvers(grpcresolver.NewBuilder(reg, grpcresolver.WithLocality(locality.FromEnv()))),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	// readme:end grpc
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.GetStatus())
	// Output: SERVING
}

// A service whose methods must not run twice replaces the default service
// config: here the retry policy covers only its idempotent Get method.
func ExampleWithServiceConfig() {
	reg := registrytest.NewMemory()
	defer reg.Close()
	b := grpcresolver.NewBuilder(reg, grpcresolver.WithServiceConfig(`{
		"loadBalancingConfig": [{"regchain_locality": {}}],
		"methodConfig": [{
			"name": [{"service": "orders.Orders", "method": "Get"}],
			"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.1s",
				"backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
		}]}`))
	conn, err := grpc.NewClient("regchain:///orders", grpc.WithResolvers(b),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println(conn.Target())
	// Output: regchain:///orders
}
