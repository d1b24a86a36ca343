package kratosplugin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	"github.com/go-kratos/kratos/v2/selector"
	"github.com/go-kratos/kratos/v2/selector/filter"
	"github.com/go-kratos/kratos/v2/selector/node/ewma"
	"github.com/go-kratos/kratos/v2/selector/p2c"
	"github.com/go-kratos/kratos/v2/selector/wrr"
	"github.com/go-kratos/kratos/v2/transport"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/internal/testsupport/kratostest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// useSelector makes a Selector Kratos' global selector for the test, and
// restores Kratos' default (wrr) after it.
func useSelector(t *testing.T, cfg kratosplugin.SelectorConfig) *kratosplugin.Selector {
	t.Helper()
	s := kratosplugin.NewSelector(cfg)
	selector.SetGlobalSelector(s)
	t.Cleanup(func() { selector.SetGlobalSelector(wrr.NewBuilder()) })
	return s
}

// sticky keeps registrations when asked to remove them, as the chain
// holds a dead instance's record: clients keep being offered it.
type sticky struct{ registry.Registry }

func (sticky) Deregister(context.Context, *registry.Instance) error { return nil }

func zoned(zone, region string) map[string]string {
	return map[string]string{"weight": "10", locality.KeyZone: zone, locality.KeyRegion: region}
}

var (
	zoneA   = zoned("a", "r1")
	zoneB   = zoned("b", "r1")
	regionC = zoned("c", "r2")
)

// fastReconnect makes gRPC reconnect to a revived server within 200ms
// (its default backoff grows to 120s).
var fastReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond},
	MinConnectTimeout: time.Second,
})

// zonedFleet runs proxied apps a1, a2 (zone a of r1), b1 (zone b of r1)
// and c1 (zone c of r2) of service "zoned", registered in a registry that
// keeps them listed after they die, and returns a Kratos registry over it.
func zonedFleet(t *testing.T) (kr *kratosplugin.Registry, a1, a2, b1, c1 *kratostest.App) {
	t.Helper()
	mem := registrytest.NewMemory()
	t.Cleanup(func() { mem.Close() })
	kr = kratosplugin.New(sticky{mem})
	start := func(id string, md map[string]string) *kratostest.App {
		return kratostest.StartAppWith(t, kr, "zoned", id, kratostest.AppConfig{Metadata: md, Proxied: true})
	}
	return kr, start("a1", zoneA), start("a2", zoneA), start("b1", zoneB), start("c1", regionC)
}

// clients returns a gRPC and an HTTP call of service "zoned" through kr,
// with Retry, answering who answered: a gRPC call the registered address
// (the proxy's), an HTTP call the instance ID.
func clients(t *testing.T, kr *kratosplugin.Registry, rc kratosplugin.RetryConfig, timeout time.Duration) (grpcCall, httpCall func(context.Context) (string, error)) {
	t.Helper()
	conn := kratostest.GRPCClientWith(t, kr, "zoned",
		kgrpc.WithMiddleware(kratosplugin.Retry(rc)),
		kgrpc.WithTimeout(timeout),
		kgrpc.WithOptions(fastReconnect))
	hc := kratostest.HTTPClient(t, kr, "zoned",
		khttp.WithMiddleware(kratosplugin.Retry(rc)),
		khttp.WithTimeout(timeout))
	return kratostest.GRPCCall(conn), kratostest.HTTPCall(hc)
}

// moves runs calls through both clients while fault happens, then waits
// until the calls of each client are all answered by want (gRPC: its
// address, HTTP: its ID), and fails the test if any call failed.
func moves(t *testing.T, what string, grpcCall, httpCall func(context.Context) (string, error), fault func(), want *kratostest.App) {
	t.Helper()
	gl := testutil.StartLoad(grpcCall, 10*time.Second)
	hl := testutil.StartLoad(httpCall, 10*time.Second)
	fault()
	d := testutil.WaitFor(t, kratostest.Timeout, what+": gRPC calls move to "+want.ID, gl.Only(20, want.GRPCAddr))
	testutil.WaitFor(t, kratostest.Timeout, what+": HTTP calls move to "+want.ID, hl.Only(20, want.ID))
	gn, gerrs := gl.Stop()
	hn, herrs := hl.Stop()
	t.Logf("%s: gRPC %d calls, %d failed, all on %s within %v; HTTP %d calls, %d failed", what, gn, len(gerrs), want.ID, d, hn, len(herrs))
	if len(gerrs) > 0 || len(herrs) > 0 {
		t.Fatalf("%s: failed calls: gRPC %v, HTTP %v", what, gerrs, herrs)
	}
}

// TestSelectorNearestLevel: calls go to the client's zone only; as the
// zone's instances die (killed: connections reset, new ones refused, but
// still registered) calls move to the region, then anywhere, without a
// failed call; when a zone instance comes back, calls come back to it.
func TestSelectorNearestLevel(t *testing.T) {
	useSelector(t, kratosplugin.SelectorConfig{
		Self:     locality.Locality{Zone: "a", Region: "r1"},
		Ejection: nearest.Ejection{BaseTime: 100 * time.Millisecond, MaxTime: 400 * time.Millisecond},
	})
	kr, a1, a2, b1, c1 := zonedFleet(t)
	grpcCall, httpCall := clients(t, kr, kratosplugin.RetryConfig{}, 2*time.Second)

	kratostest.CallsReach(t, grpcCall, a1.GRPCAddr, a2.GRPCAddr)
	kratostest.CallsReach(t, httpCall, "a1", "a2")
	kratostest.MustCall(t, "gRPC, zone a", 40, grpcCall, a1.GRPCAddr, a2.GRPCAddr)
	kratostest.MustCall(t, "HTTP, zone a", 40, httpCall, "a1", "a2")

	moves(t, "a1 killed", grpcCall, httpCall, a1.Kill, a2)
	moves(t, "a2 killed too: zone a empty", grpcCall, httpCall, a2.Kill, b1)
	moves(t, "b1 killed too: region r1 empty", grpcCall, httpCall, b1.Kill, c1)
	moves(t, "a1 back", grpcCall, httpCall, func() { a1.Revive(t) }, a1)
}

// TestSelectorCutOff: an instance cut off silently (traffic dropped, no
// reset) is found by its attempts timing out; calls move on without a
// failed call and come back once it answers again.
func TestSelectorCutOff(t *testing.T) {
	useSelector(t, kratosplugin.SelectorConfig{
		Self:     locality.Locality{Zone: "a", Region: "r1"},
		Ejection: nearest.Ejection{BaseTime: 300 * time.Millisecond, MaxTime: time.Second},
	})
	kr, a1, a2, b1, _ := zonedFleet(t)
	grpcCall, httpCall := clients(t, kr, kratosplugin.RetryConfig{AttemptTimeout: 500 * time.Millisecond}, 5*time.Second)
	kratostest.CallsReach(t, grpcCall, a1.GRPCAddr, a2.GRPCAddr)
	kratostest.CallsReach(t, httpCall, "a1", "a2")

	moves(t, "a1 cut off", grpcCall, httpCall, a1.Cut, a2)
	moves(t, "a2 cut off too", grpcCall, httpCall, a2.Cut, b1)
	moves(t, "a2 heals", grpcCall, httpCall, a2.Heal, a2)
}

// TestSelectorWiring runs Kratos' own selector machinery (Default with
// the configured balancer and nodes, the client's node filters, the Done
// callbacks) without servers: the nearest level, filters first, ejection
// by reported outcomes, p2c/ewma as the balancer.
func TestSelectorWiring(t *testing.T) {
	node := func(id, version string, md map[string]string) selector.Node {
		return selector.NewNode("http", id+":80", &kratosregistry.ServiceInstance{ID: id, Name: "svc", Version: version, Metadata: md})
	}
	nodes := []selector.Node{
		node("a1", "v1", zoneA), node("a2", "v2", zoneA),
		node("b1", "v1", zoneB), node("c1", "v1", regionC),
	}
	for _, tt := range []struct {
		name string
		cfg  kratosplugin.SelectorConfig
	}{
		{"wrr", kratosplugin.SelectorConfig{}},
		{"p2c", kratosplugin.SelectorConfig{Balancer: &p2c.Builder{}, Node: &ewma.Builder{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Self = locality.Locality{Zone: "a", Region: "r1"}
			tt.cfg.Ejection = nearest.Ejection{ConsecutiveFailures: 2, BaseTime: time.Hour}
			sel := kratosplugin.NewSelector(tt.cfg)
			s := sel.Build()
			s.Apply(nodes)
			picks := func(n int, fail bool, opts ...selector.SelectOption) []string {
				seen := map[string]bool{}
				for range n {
					got, done, err := s.Select(context.Background(), opts...)
					if err != nil {
						t.Fatalf("Select: %v", err)
					}
					seen[got.Address()] = true
					var callErr error
					if fail {
						callErr = errors.New("connection refused")
					}
					done(context.Background(), selector.DoneInfo{Err: callErr})
				}
				var out []string
				for a := range seen {
					out = append(out, strings.TrimSuffix(a, ":80"))
				}
				slices.Sort(out)
				return out
			}
			if got := picks(50, false); !slices.Equal(got, []string{"a1", "a2"}) {
				t.Errorf("healthy: picked %v, want [a1 a2]", got)
			}
			v1 := selector.WithNodeFilter(filter.Version("v1"))
			if got := picks(20, false, v1); !slices.Equal(got, []string{"a1"}) {
				t.Errorf("version v1: picked %v, want [a1]", got)
			}
			picks(2, true, v1) // a1 fails twice: ejected
			if ej := sel.Ejected(); !slices.Equal(ej, []string{"svc|http://a1:80"}) {
				t.Errorf("Ejected = %v, want [svc|http://a1:80]", ej)
			}
			if got := picks(20, false, v1); !slices.Equal(got, []string{"b1"}) {
				t.Errorf("v1, a1 ejected: picked %v, want [b1]", got)
			}
			if got := picks(20, false); !slices.Equal(got, []string{"a2"}) {
				t.Errorf("a1 ejected: picked %v, want [a2]", got)
			}
			// A retried call skips what it tried.
			ctx, tried := nearest.WithTried(context.Background())
			first, _, _ := s.Select(ctx)
			second, _, _ := s.Select(ctx)
			if first.Address() != "a2:80" || second.Address() != "b1:80" || tried.Len() != 2 {
				t.Errorf("retry picked %s then %s (%d tried), want a2 then b1", first.Address(), second.Address(), tried.Len())
			}
		})
	}
}

func TestCallFailed(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		failed, ok bool
	}{
		{"success", nil, false, true},
		{"cancelled", fmt.Errorf("call: %w", context.Canceled), false, false},
		{"grpc cancelled", status.Error(codes.Canceled, "x"), false, false},
		{"grpc unavailable", status.Error(codes.Unavailable, "x"), true, true},
		{"grpc deadline", status.Error(codes.DeadlineExceeded, "x"), true, true},
		{"grpc application error", status.Error(codes.NotFound, "x"), false, true},
		{"grpc internal", status.Error(codes.Internal, "x"), false, true},
		{"http 503", kerrors.New(503, "x", "y"), true, true},
		{"http 502", kerrors.New(502, "x", "y"), true, true},
		{"http 500", kerrors.New(500, "x", "y"), false, true},
		{"http 404", kerrors.New(404, "x", "y"), false, true},
		{"refused", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, true, true},
		{"reset", &url.Error{Op: "Get", URL: "http://x", Err: io.ErrUnexpectedEOF}, true, true},
		{"timeout", &url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failed, ok := kratosplugin.CallFailed(tt.err)
			if failed != tt.failed || ok != tt.ok {
				t.Errorf("CallFailed(%v) = %v, %v; want %v, %v", tt.err, failed, ok, tt.failed, tt.ok)
			}
		})
	}
}

// fakeTransport is a client transport as Kratos' HTTP and gRPC clients
// put in the context, for the retry rules' edge cases.
type fakeTransport struct {
	kind transport.Kind
	op   string
	req  *http.Request
}

func (f *fakeTransport) Kind() transport.Kind            { return f.kind }
func (f *fakeTransport) Endpoint() string                { return "discovery:///svc" }
func (f *fakeTransport) Operation() string               { return f.op }
func (f *fakeTransport) RequestHeader() transport.Header { return nil }
func (f *fakeTransport) ReplyHeader() transport.Header   { return nil }
func (f *fakeTransport) Request() *http.Request          { return f.req }
func (f *fakeTransport) PathTemplate() string            { return "" }

// TestRetryRules checks which failures Retry sends again, with a handler
// that fails as told and "picks" an instance per attempt as the selector
// does.
func TestRetryRules(t *testing.T) {
	get := func(method string, body io.Reader) *http.Request {
		r, _ := http.NewRequest(method, "http://svc/x", body)
		return r
	}
	keyed := get(http.MethodPost, nil)
	keyed.Header.Set("Idempotency-Key", "k1")
	refused := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	reset := &url.Error{Op: "Get", URL: "http://x", Err: io.ErrUnexpectedEOF}
	tests := []struct {
		name  string
		tr    *fakeTransport
		err   error
		pick  bool // the attempt picked an instance
		tries int  // attempts made
	}{
		{"http refused, POST with body", &fakeTransport{kind: transport.KindHTTP, req: get(http.MethodPost, strings.NewReader("b"))}, refused, true, 3},
		{"http reset, GET", &fakeTransport{kind: transport.KindHTTP, req: get(http.MethodGet, nil)}, reset, true, 3},
		{"http 503, DELETE", &fakeTransport{kind: transport.KindHTTP, req: get(http.MethodDelete, nil)}, kerrors.New(503, "", ""), true, 3},
		{"http 500, GET", &fakeTransport{kind: transport.KindHTTP, req: get(http.MethodGet, nil)}, kerrors.New(500, "", ""), true, 1},
		{"http reset, POST", &fakeTransport{kind: transport.KindHTTP, req: get(http.MethodPost, nil)}, reset, true, 1},
		{"http reset, POST with Idempotency-Key", &fakeTransport{kind: transport.KindHTTP, req: keyed}, reset, true, 3},
		{"http reset, PUT with body", &fakeTransport{kind: transport.KindHTTP, req: get(http.MethodPut, strings.NewReader("b"))}, reset, true, 1},
		{"http no instance picked", &fakeTransport{kind: transport.KindHTTP, req: get(http.MethodGet, nil)}, kerrors.New(503, "NODE_NOT_FOUND", ""), false, 1},
		{"grpc unavailable, health", &fakeTransport{kind: transport.KindGRPC, op: kratosplugin.HealthCheck}, status.Error(codes.Unavailable, ""), true, 3},
		{"grpc unavailable, listed service", &fakeTransport{kind: transport.KindGRPC, op: "/pkg.Reader/Get"}, status.Error(codes.Unavailable, ""), true, 3},
		{"grpc unavailable, listed method", &fakeTransport{kind: transport.KindGRPC, op: "/pkg.Writer/Read"}, status.Error(codes.Unavailable, ""), true, 3},
		{"grpc unavailable, other method", &fakeTransport{kind: transport.KindGRPC, op: "/pkg.Writer/Write"}, status.Error(codes.Unavailable, ""), true, 1},
		{"grpc application error", &fakeTransport{kind: transport.KindGRPC, op: kratosplugin.HealthCheck}, status.Error(codes.NotFound, ""), true, 1},
		{"grpc deadline", &fakeTransport{kind: transport.KindGRPC, op: kratosplugin.HealthCheck}, status.Error(codes.DeadlineExceeded, ""), true, 1},
	}
	mw := kratosplugin.Retry(kratosplugin.RetryConfig{Idempotent: []string{"/pkg.Reader/", "/pkg.Writer/Read"}})
	tr := nearest.NewTracker(nearest.Ejection{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tries := 0
			h := mw(func(ctx context.Context, _ any) (any, error) {
				tries++
				if tt.pick {
					nearest.TriedFrom(ctx).Add(tr.Endpoint(fmt.Sprint(tries)))
				}
				return nil, tt.err
			})
			ctx := transport.NewClientContext(context.Background(), tt.tr)
			if _, err := h(ctx, nil); !errors.Is(err, tt.err) && err != tt.err {
				t.Errorf("error %v, want %v", err, tt.err)
			}
			if tries != tt.tries {
				t.Errorf("%d attempts, want %d", tries, tt.tries)
			}
		})
	}
	t.Run("caller cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(transport.NewClientContext(context.Background(),
			&fakeTransport{kind: transport.KindGRPC, op: kratosplugin.HealthCheck}))
		tries := 0
		h := mw(func(ctx context.Context, _ any) (any, error) {
			tries++
			nearest.TriedFrom(ctx).Add(tr.Endpoint("x"))
			cancel()
			return nil, status.Error(codes.Unavailable, "")
		})
		h(ctx, nil)
		if tries != 1 {
			t.Errorf("%d attempts after the caller cancelled, want 1", tries)
		}
	})
	t.Run("attempt timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mw := kratosplugin.Retry(kratosplugin.RetryConfig{AttemptTimeout: time.Millisecond})
			tries := 0
			h := mw(func(ctx context.Context, _ any) (any, error) {
				tries++
				nearest.TriedFrom(ctx).Add(tr.Endpoint(fmt.Sprint("x", tries)))
				<-ctx.Done()
				return nil, status.Error(codes.DeadlineExceeded, "")
			})
			call := func(op string) time.Duration {
				ctx, cancel := context.WithTimeout(transport.NewClientContext(context.Background(),
					&fakeTransport{kind: transport.KindGRPC, op: op}), time.Second)
				defer cancel()
				tries = 0
				start := time.Now()
				h(ctx, nil)
				return time.Since(start)
			}
			if took := call("/pkg.Any/Thing"); tries != 1 || took != time.Second {
				t.Errorf("a method not known idempotent: %d attempts over %v, want 1 with the call's whole deadline (1s)", tries, took)
			}
			if took := call(kratosplugin.HealthCheck); tries != 3 || took != time.Second {
				t.Errorf("health check: %d attempts over %v, want 3, the last with the rest of the call's deadline", tries, took)
			}
		})
	})
	t.Run("adaptive attempt timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mw := kratosplugin.Retry(kratosplugin.RetryConfig{})
			tries, stall := 0, false
			h := mw(func(ctx context.Context, _ any) (any, error) {
				tries++
				nearest.TriedFrom(ctx).Add(tr.Endpoint(fmt.Sprint("y", tries)))
				if stall && tries == 1 {
					<-ctx.Done() // cut off silently
					return nil, status.Error(codes.DeadlineExceeded, "")
				}
				time.Sleep(30 * time.Millisecond)
				return nil, nil
			})
			call := func() (time.Duration, error) {
				ctx, cancel := context.WithTimeout(transport.NewClientContext(context.Background(),
					&fakeTransport{kind: transport.KindGRPC, op: kratosplugin.HealthCheck}), 2*time.Second)
				defer cancel()
				tries = 0
				start := time.Now()
				_, err := h(ctx, nil)
				return time.Since(start), err
			}
			stall = true
			if took, err := call(); err == nil || took != 2*time.Second {
				t.Errorf("stalled before any success: %v after %v, want the call's deadline (no attempt timeout yet)", err, took)
			}
			stall = false
			for range nearest.DefaultAttemptSamples {
				call()
			}
			stall = true
			// The first attempt is given up after 4 x 30ms.
			if took, err := call(); err != nil || tries != 2 || took != 150*time.Millisecond {
				t.Errorf("stalled after 20 successes: %v after %v and %d attempts, want success after 120ms + 30ms", err, took, tries)
			}
		})
	})

}
