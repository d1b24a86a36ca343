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

	// A client resolving "regchain:///greeter" through the registry.
	// readme:begin grpc
	conn, err := grpc.NewClient("regchain:///greeter",
		grpc.WithResolvers(grpcresolver.NewBuilder(reg)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
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
