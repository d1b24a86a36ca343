package grpcbalancer_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/grpcbalancer"
)

// An endpoint that stops answering without closing its connection (its
// connection stays READY: nothing tells the policy) costs an idempotent
// call one attempt timeout, not the call: Retry sends the call again to an
// endpoint it has not tried. A method not listed idempotent is not sent
// again, and waits out its deadline on the silent endpoint.
func TestRetrySilentEndpoint(t *testing.T) {
	silent, ok := startServer(t), startServer(t)
	conn, _ := dialWith(t, sc(`{`+self+`}`), []grpc.DialOption{grpcbalancer.Retry(grpcbalancer.RetryConfig{
		AttemptTimeout: 200 * time.Millisecond, Idempotent: []string{method},
	})}, endpoint(silent.addr, zoneA), endpoint(ok.addr, zoneA))
	// Both connected and answering first.
	seen := map[string]bool{}
	for len(seen) < 2 {
		addr, err := call(context.Background(), conn)
		if err != nil {
			t.Fatal(err)
		}
		seen[addr] = true
	}
	silent.mode.Store(modeBlock)
	for i := range 20 {
		addr, err := call(context.Background(), conn)
		if err != nil {
			t.Fatalf("call %d with an endpoint silent: %v", i, err)
		}
		if addr != ok.addr {
			t.Fatalf("call %d answered by %s, want %s", i, addr, ok.addr)
		}
	}
	if n := len(silent.inside); n == 0 {
		t.Error("no call reached the silent endpoint: the test proves nothing")
	}

	// A method Retry does not know as idempotent is sent once: on a
	// channel whose only endpoint is silent, each call reaches it once and
	// waits out its deadline.
	lone, _ := dialWith(t, sc(`{`+self+`}`), []grpc.DialOption{grpcbalancer.Retry(grpcbalancer.RetryConfig{
		AttemptTimeout: 100 * time.Millisecond, Idempotent: []string{method},
	})}, endpoint(silent.addr, zoneA))
	for len(silent.inside) > 0 {
		<-silent.inside
	}
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := lone.Invoke(ctx, "/regchain.test.Echo/Write", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("non-idempotent call %d = %v, want DeadlineExceeded", i, err)
		}
	}
	if n := len(silent.inside); n != 2 {
		t.Errorf("2 non-idempotent calls reached the server %d times, want 2 (no retry)", n)
	}
}
