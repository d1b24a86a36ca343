// Package kratostest runs Kratos applications and clients for the tests
// of the Kratos plugin and of its interop with Kratos' own registries: an
// app with a gRPC and an HTTP server on loopback registered through a
// Registrar, clients that discover it, and calls that say who answered.
package kratostest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/harness/freeport"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// Timeout bounds every wait of the package.
const Timeout = 20 * time.Second

// App is a running Kratos application with a gRPC and an HTTP server on
// loopback, registered through a Registrar.
type App struct {
	ID       string
	GRPCAddr string // host:port of the gRPC server, as registered
	HTTPAddr string // host:port of the HTTP server, as registered
	// With AppConfig.Proxied, the proxies the registered addresses lead
	// to; nil otherwise.
	GRPCProxy, HTTPProxy   *faultproxy.Proxy
	grpcTarget, httpTarget string
	app                    *kratos.App
	done                   chan error
	stopped                bool
}

// AppConfig holds the optional settings of StartAppWith.
type AppConfig struct {
	// Metadata is registered with the instance. If nil, weight 10 and
	// zone "test".
	Metadata map[string]string
	// Proxied registers the addresses of two fault proxies in front of
	// the servers, so that a test can kill the instance (Kill: connections
	// reset, new ones refused), cut it off silently (Cut) or bring it
	// back (Revive, Heal) while it stays registered.
	Proxied bool
	// GRPC and HTTP add server options.
	GRPC []kgrpc.ServerOption
	HTTP []khttp.ServerOption
}

// StartApp runs a Kratos app named name with instance id. Its gRPC server
// serves grpc-go's health service (Kratos registers it on every gRPC
// server); its HTTP server answers GET /whoami with {"id": id}.
func StartApp(t testing.TB, reg kratosregistry.Registrar, name, id string) *App {
	t.Helper()
	return StartAppWith(t, reg, name, id, AppConfig{})
}

// StartAppWith is StartApp with the settings of cfg.
func StartAppWith(t testing.TB, reg kratosregistry.Registrar, name, id string, cfg AppConfig) *App {
	t.Helper()
	listen := func() net.Listener {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		return lis
	}
	glis, hlis := listen(), listen()
	a := &App{ID: id, GRPCAddr: glis.Addr().String(), HTTPAddr: hlis.Addr().String(), done: make(chan error, 1)}
	a.grpcTarget, a.httpTarget = a.GRPCAddr, a.HTTPAddr
	gopts := append([]kgrpc.ServerOption{kgrpc.Address(a.grpcTarget), kgrpc.Listener(glis)}, cfg.GRPC...)
	hopts := append([]khttp.ServerOption{khttp.Address(a.httpTarget), khttp.Listener(hlis)}, cfg.HTTP...)
	if cfg.Proxied {
		a.GRPCProxy, a.GRPCAddr = a.proxy(t, a.grpcTarget)
		a.HTTPProxy, a.HTTPAddr = a.proxy(t, a.httpTarget)
		gopts = append(gopts, kgrpc.Endpoint(&url.URL{Scheme: "grpc", Host: a.GRPCAddr}))
		hopts = append(hopts, khttp.Endpoint(&url.URL{Scheme: "http", Host: a.HTTPAddr}))
	}
	gs := kgrpc.NewServer(gopts...)
	hs := khttp.NewServer(hopts...)
	hs.HandleFunc("/whoami", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q}`, id)
	})
	md := cfg.Metadata
	if md == nil {
		md = map[string]string{"weight": "10", "zone": "test"}
	}
	a.app = kratos.New(
		kratos.ID(id),
		kratos.Name(name),
		kratos.Version("v1.0.0"),
		kratos.Metadata(md),
		kratos.Server(gs, hs),
		kratos.Registrar(reg),
		kratos.StopTimeout(5*time.Second),
	)
	go func() { a.done <- a.app.Run() }()
	t.Cleanup(func() { a.Stop(t) })
	return a
}

func (a *App) proxy(t testing.TB, target string) (*faultproxy.Proxy, string) {
	t.Helper()
	// A port below the ephemeral range, free again for Revive.
	port, err := freeport.TCP()
	if err != nil {
		t.Fatalf("proxy port: %v", err)
	}
	p, err := faultproxy.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), target)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	t.Cleanup(func() { a.closeProxies() })
	return p, p.Addr()
}

func (a *App) closeProxies() {
	for _, p := range []*faultproxy.Proxy{a.GRPCProxy, a.HTTPProxy} {
		if p != nil {
			p.Close()
		}
	}
}

// Kill makes a proxied app look dead to its clients, as a killed process
// does: its connections are reset and new ones refused. It stays
// registered and keeps running behind the proxies.
func (a *App) Kill() { a.closeProxies() }

// Revive brings a killed app back at the same addresses.
func (a *App) Revive(t testing.TB) {
	t.Helper()
	var err error
	testutil.WaitFor(t, Timeout, "proxies listen again", func() string {
		if a.GRPCProxy, err = faultproxy.Listen(a.GRPCAddr, a.grpcTarget); err != nil {
			return err.Error()
		}
		return ""
	})
	testutil.WaitFor(t, Timeout, "proxies listen again", func() string {
		if a.HTTPProxy, err = faultproxy.Listen(a.HTTPAddr, a.httpTarget); err != nil {
			return err.Error()
		}
		return ""
	})
}

// Cut cuts a proxied app off silently: its traffic is held, its
// connections stay open, nothing is reset.
func (a *App) Cut() {
	a.GRPCProxy.Partition()
	a.HTTPProxy.Partition()
}

// Heal ends Cut.
func (a *App) Heal() {
	a.GRPCProxy.Heal()
	a.HTTPProxy.Heal()
}

// Stop stops the app (deregistering it) and waits for Run to return. A
// proxied app's proxies are closed first.
func (a *App) Stop(t testing.TB) {
	t.Helper()
	if a.stopped {
		return
	}
	a.stopped = true
	a.closeProxies() // a cut proxy would hold the servers' graceful stop
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
	return GRPCClientWith(t, d, name, kgrpc.WithOptions(opts...))
}

// GRPCClientWith dials discovery:///name through d with Kratos client
// options.
func GRPCClientWith(t testing.TB, d kratosregistry.Discovery, name string, opts ...kgrpc.ClientOption) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	conn, err := kgrpc.DialInsecure(ctx, append([]kgrpc.ClientOption{
		kgrpc.WithEndpoint("discovery:///" + name),
		kgrpc.WithDiscovery(d),
		kgrpc.WithPrintDiscoveryDebugLog(false),
	}, opts...)...)
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
