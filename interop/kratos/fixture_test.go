package kratosinterop

import (
	"context"
	"fmt"
	"net/http"
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

// app is a running Kratos application with a gRPC and an HTTP server on
// loopback, registered through a Registrar.
type app struct {
	id       string
	grpcAddr string // host:port of the gRPC server
	app      *kratos.App
	done     chan error
}

// startApp runs a Kratos app named name with instance id, version v1.0.0
// and weight 10, stopped (and so deregistered) when the test ends. Its gRPC
// server serves grpc-go's health service (Kratos registers it on every gRPC
// server); its HTTP server answers GET /whoami with {"id": id}.
func startApp(t *testing.T, reg kratosregistry.Registrar, name, id string) *app {
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
	if _, err := hs.Endpoint(); err != nil {
		t.Fatalf("http endpoint: %v", err)
	}
	a := &app{
		id:       id,
		grpcAddr: gu.Host,
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
	t.Cleanup(func() { a.stop(t) })
	return a
}

// stop stops the app (deregistering it) and waits for Run to return.
func (a *app) stop(t *testing.T) {
	t.Helper()
	if err := a.app.Stop(); err != nil {
		t.Errorf("app %s: Stop: %v", a.id, err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("app %s: Run: %v", a.id, err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("app %s: Run did not return within %v of Stop", a.id, waitTimeout)
	}
}

// grpcClient dials discovery:///name through d.
func grpcClient(t *testing.T, d kratosregistry.Discovery, name string) *grpc.ClientConn {
	t.Helper()
	conn, err := kgrpc.DialInsecure(ctxT(t),
		kgrpc.WithEndpoint("discovery:///"+name),
		kgrpc.WithDiscovery(d),
		kgrpc.WithPrintDiscoveryDebugLog(false),
	)
	if err != nil {
		t.Fatalf("grpc dial discovery:///%s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// callGRPC makes one health check and returns the address of the server
// that answered.
func callGRPC(ctx context.Context, conn *grpc.ClientConn) (string, error) {
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

// httpClient creates a Kratos HTTP client of discovery:///name through d.
// Its context has no deadline: Kratos' HTTP resolver watches for as long as
// that context lives.
func httpClient(t *testing.T, d kratosregistry.Discovery, name string) *khttp.Client {
	t.Helper()
	tr := &http.Transport{}
	c, err := khttp.NewClient(context.Background(),
		khttp.WithEndpoint("discovery:///"+name),
		khttp.WithDiscovery(d),
		khttp.WithTransport(tr),
	)
	if err != nil {
		t.Fatalf("http client discovery:///%s: %v", name, err)
	}
	t.Cleanup(func() {
		c.Close()
		tr.CloseIdleConnections()
	})
	return c
}

// callHTTP makes one GET /whoami and returns the answering instance's ID.
func callHTTP(ctx context.Context, c *khttp.Client) (string, error) {
	var reply struct {
		ID string `json:"id"`
	}
	if err := c.Invoke(ctx, http.MethodGet, "/whoami", nil, &reply); err != nil {
		return "", err
	}
	return reply.ID, nil
}

// callsReach makes calls until every instance in want has answered one;
// calls may fail meanwhile (e.g. while a new instance is being discovered).
func callsReach(t *testing.T, call func(ctx context.Context) (string, error), want ...string) {
	t.Helper()
	seen := map[string]bool{}
	testutil.WaitFor(t, waitTimeout, fmt.Sprintf("calls reach %v", want), func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := call(ctx)
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
