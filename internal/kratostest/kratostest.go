// Package kratostest runs Kratos applications and clients for the tests
// of the Kratos plugin and of its interop with Kratos' own registries: an
// app with a gRPC and an HTTP server on loopback registered through a
// Registrar, clients that discover it, and calls that say who answered.
package kratostest

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/regchain/regchain/internal/testutil"
)

// Timeout bounds every wait of the package.
const Timeout = 20 * time.Second

// App is a running Kratos application with a gRPC and an HTTP server on
// loopback, registered through a Registrar.
type App struct {
	ID       string
	GRPCAddr string // host:port of the gRPC server
	HTTPAddr string // host:port of the HTTP server
	app      *kratos.App
	done     chan error
	stopped  bool
}

// StartApp runs a Kratos app named name with instance id. Its gRPC server
// serves grpc-go's health service (Kratos registers it on every gRPC
// server); its HTTP server answers GET /whoami with {"id": id}.
func StartApp(t testing.TB, reg kratosregistry.Registrar, name, id string) *App {
	t.Helper()
	gs := kgrpc.NewServer(kgrpc.Address("127.0.0.1:0"))
	hs := khttp.NewServer(khttp.Address("127.0.0.1:0"))
	hs.HandleFunc("/whoami", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q}`, id)
	})
	gu, err := gs.Endpoint()
	if err != nil {
		t.Fatalf("grpc endpoint: %v", err)
	}
	hu, err := hs.Endpoint()
	if err != nil {
		t.Fatalf("http endpoint: %v", err)
	}
	a := &App{
		ID:       id,
		GRPCAddr: gu.Host,
		HTTPAddr: hu.Host,
		done:     make(chan error, 1),
		app: kratos.New(
			kratos.ID(id),
			kratos.Name(name),
			kratos.Version("v1.0.0"),
			kratos.Metadata(map[string]string{"weight": "10", "zone": "test"}),
			kratos.Server(gs, hs),
			kratos.Registrar(reg),
			kratos.StopTimeout(5*time.Second),
		),
	}
	go func() { a.done <- a.app.Run() }()
	t.Cleanup(func() { a.Stop(t) })
	return a
}

// Stop stops the app (deregistering it) and waits for Run to return.
func (a *App) Stop(t testing.TB) {
	t.Helper()
	if a.stopped {
		return
	}
	a.stopped = true
	if err := a.app.Stop(); err != nil {
		t.Errorf("app %s: Stop: %v", a.ID, err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("app %s: Run: %v", a.ID, err)
		}
	case <-time.After(Timeout):
		t.Errorf("app %s: Run did not return within %v of Stop", a.ID, Timeout)
	}
}

// GRPCClient dials discovery:///name through d.
func GRPCClient(t testing.TB, d kratosregistry.Discovery, name string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	conn, err := kgrpc.DialInsecure(ctx,
		kgrpc.WithEndpoint("discovery:///"+name),
		kgrpc.WithDiscovery(d),
		kgrpc.WithPrintDiscoveryDebugLog(false),
		kgrpc.WithOptions(opts...),
	)
	if err != nil {
		t.Fatalf("grpc dial discovery:///%s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// GRPCCall returns a call over conn for CallsReach and the like: one
// health check, answering the address of the server that answered.
func GRPCCall(conn *grpc.ClientConn) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var p peer.Peer
		resp, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.Peer(&p))
		if err != nil {
			return "", err
		}
		if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
			return "", fmt.Errorf("health status %v", resp.GetStatus())
		}
		return p.Addr.String(), nil
	}
}

// HTTPClient creates a Kratos HTTP client of discovery:///name through d.
// Its context has no deadline: Kratos' HTTP resolver watches for as long as
// that context lives.
func HTTPClient(t testing.TB, d kratosregistry.Discovery, name string, opts ...khttp.ClientOption) *khttp.Client {
	t.Helper()
	tr := &http.Transport{}
	c, err := khttp.NewClient(context.Background(), append([]khttp.ClientOption{
		khttp.WithEndpoint("discovery:///" + name),
		khttp.WithDiscovery(d),
		khttp.WithTransport(tr),
	}, opts...)...)
	if err != nil {
		t.Fatalf("http client discovery:///%s: %v", name, err)
	}
	t.Cleanup(func() {
		c.Close()
		tr.CloseIdleConnections()
	})
	return c
}

// HTTPCall returns a call over c for CallsReach and the like: one GET
// /whoami, answering the ID of the instance that answered.
func HTTPCall(c *khttp.Client) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var reply struct {
			ID string `json:"id"`
		}
		if err := c.Invoke(ctx, http.MethodGet, "/whoami", nil, &reply); err != nil {
			return "", err
		}
		return reply.ID, nil
	}
}

// CallsReach makes calls until every instance in want has answered one;
// calls may fail meanwhile (e.g. while a new instance is being discovered).
func CallsReach(t testing.TB, call func(ctx context.Context) (string, error), want ...string) {
	t.Helper()
	seen := map[string]bool{}
	testutil.WaitFor(t, Timeout, fmt.Sprintf("calls reach %v", want), func() string {
		got, err := CallOnce(call)
		if err != nil {
			return fmt.Sprintf("call: %v", err)
		}
		seen[got] = true
		for _, w := range want {
			if !seen[w] {
				return fmt.Sprintf("seen %v", seen)
			}
		}
		return ""
	})
}

// CallsOnly makes calls until a run of consecutive successful calls is
// answered by want alone: traffic has moved.
func CallsOnly(t testing.TB, call func(ctx context.Context) (string, error), want string) {
	t.Helper()
	run := 0
	testutil.WaitFor(t, Timeout, fmt.Sprintf("calls reach only %s", want), func() string {
		got, err := CallOnce(call)
		switch {
		case err != nil:
			run = 0
			return fmt.Sprintf("call: %v", err)
		case got != want:
			run = 0
			return fmt.Sprintf("answered by %s", got)
		}
		if run++; run < 10 {
			return fmt.Sprintf("%d calls in a row", run)
		}
		return ""
	})
}

// MustCall makes n calls, every one of which must succeed at once and be
// answered by one of want.
func MustCall(t testing.TB, what string, n int, call func(ctx context.Context) (string, error), want ...string) {
	t.Helper()
	for i := range n {
		got, err := CallOnce(call)
		if err != nil {
			t.Fatalf("%s: call %d: %v", what, i, err)
		}
		if !slices.Contains(want, got) {
			t.Fatalf("%s: call %d answered by %q, want one of %v", what, i, got, want)
		}
	}
}

func CallOnce(call func(ctx context.Context) (string, error)) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return call(ctx)
}
