package grpcresolver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/regchain/regchain/grpcresolver"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry/registrytest"
)

// Real servers and a real client: round_robin spreads calls over every
// registered server, follows registrations and removals, and client-side
// health checking takes a NOT_SERVING server out of rotation.
func TestRoundRobinAndHealth(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	s1, s2, s3 := startServer(t), startServer(t), startServer(t)
	register(t, mem, s1.instance("greeter", "1"), s2.instance("greeter", "2"))
	conn := dial(t, grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(quietLogger()),
		grpcresolver.WithServiceConfig(serviceConfig)), "regchain:///greeter")

	peersWithin := func(n int) map[string]int {
		seen := make(map[string]int)
		for range n {
			p, err := check(context.Background(), conn)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			seen[p]++
		}
		return seen
	}
	want := func(seen map[string]int, addrs ...string) string {
		if len(seen) != len(addrs) {
			return fmt.Sprintf("peers %v, want %v", seen, addrs)
		}
		for _, a := range addrs {
			if seen[a] == 0 {
				return fmt.Sprintf("peers %v, want %v", seen, addrs)
			}
		}
		return ""
	}
	testutil.WaitFor(t, 10*time.Second, "calls on s1 and s2", func() string { return want(peersWithin(10), s1.addr, s2.addr) })

	register(t, mem, s3.instance("greeter", "3"))
	testutil.WaitFor(t, 10*time.Second, "calls on s1, s2, s3", func() string { return want(peersWithin(12), s1.addr, s2.addr, s3.addr) })

	if err := mem.Deregister(context.Background(), s1.instance("greeter", "1")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "calls on s2, s3", func() string { return want(peersWithin(10), s2.addr, s3.addr) })

	s2.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	testutil.WaitFor(t, 10*time.Second, "calls on s3 only", func() string { return want(peersWithin(10), s3.addr) })
}

// Across grpc-go's idle mode the resolver is closed (its watch stopped) and
// built again on the next call.
func TestIdleMode(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	reg := &countingRegistry{Registry: mem}
	s1 := startServer(t)
	register(t, mem, s1.instance("greeter", "1"))
	conn := dial(t, grpcresolver.NewBuilder(reg, grpcresolver.WithLogger(quietLogger())), "regchain:///greeter",
		grpc.WithIdleTimeout(100*time.Millisecond))
	for round := range 3 {
		if _, err := check(context.Background(), conn); err != nil {
			t.Fatalf("round %d: Check: %v", round, err)
		}
		testutil.WaitFor(t, 10*time.Second, "channel idle", testutil.Until(func() bool {
			return conn.GetState() == connectivity.Idle && reg.live.Load() == 0
		}))
	}
	// A server registered while the channel was idle is found after it.
	s2 := startServer(t)
	mem.Deregister(context.Background(), s1.instance("greeter", "1"))
	register(t, mem, s2.instance("greeter", "2"))
	p, err := check(context.Background(), conn)
	if err != nil || p != s2.addr {
		t.Fatalf("after idle: peer %q, err %v; want %s", p, err, s2.addr)
	}
}
