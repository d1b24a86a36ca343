package grpcresolver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/grpcbalancer"
	"github.com/regchain/regchain/grpcresolver"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// placed is an instance of "greeter" at addr in zone/region.
func placed(id, addr, zone, region string) *registry.Instance {
	return &registry.Instance{ID: id, Name: "greeter", Version: "v1",
		Metadata:  map[string]string{locality.KeyZone: zone, locality.KeyRegion: region},
		Endpoints: []string{"grpc://" + addr}}
}

// lbPolicy returns the name of the first policy of a service config JSON
// and its config.
func lbPolicy(t *testing.T, js string) (string, map[string]any) {
	t.Helper()
	var sc struct {
		LoadBalancingConfig []map[string]map[string]any `json:"loadBalancingConfig"`
		MethodConfig        []struct {
			RetryPolicy struct {
				RetryableStatusCodes []string `json:"retryableStatusCodes"`
			} `json:"retryPolicy"`
		} `json:"methodConfig"`
	}
	if err := json.Unmarshal([]byte(js), &sc); err != nil {
		t.Fatalf("service config %s: %v", js, err)
	}
	if len(sc.MethodConfig) != 1 || strings.Join(sc.MethodConfig[0].RetryPolicy.RetryableStatusCodes, ",") != "UNAVAILABLE" {
		t.Errorf("service config %s: want one method config retrying UNAVAILABLE", js)
	}
	for name, cfg := range sc.LoadBalancingConfig[0] {
		return name, cfg
	}
	return "", nil
}

// The default service config: round_robin while no instance carries a
// place, the locality policy with the client's place once one does; each
// endpoint carries its instance's place.
func TestDefaultServiceConfig(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	register(t, mem, inst("plain", "127.0.0.1:9001", nil))
	cc := newFakeCC()
	b := grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(quietLogger()),
		grpcresolver.WithLocality(locality.Locality{Zone: "a", Region: "r1"}))
	r, err := b.Build(target("greeter"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st := waitStates(t, cc, 1)
	if st.ServiceConfig == nil {
		t.Fatal("no service config in the state")
	}
	if name, _ := lbPolicy(t, cc.lastServiceConfig()); name != "round_robin" {
		t.Errorf("policy without locality = %s, want round_robin", name)
	}
	register(t, mem, placed("z", "127.0.0.1:9002", "a", "r1"))
	st = waitStates(t, cc, 2)
	name, cfg := lbPolicy(t, cc.lastServiceConfig())
	if name != grpcbalancer.Name || cfg["zone"] != "a" || cfg["region"] != "r1" {
		t.Errorf("policy with locality = %s %v, want %s with zone a, region r1", name, cfg, grpcbalancer.Name)
	}
	for _, ep := range st.Endpoints {
		l, ok := grpcbalancer.LocalityOf(ep)
		switch id := grpcresolver.InfoFromEndpoint(ep).ID; {
		case id == "z" && (!ok || l != (locality.Locality{Zone: "a", Region: "r1"})):
			t.Errorf("endpoint z: place %+v, %v", l, ok)
		case id == "plain" && ok:
			t.Errorf("endpoint plain has a place: %+v", l)
		}
	}
}

func TestServiceConfigOverride(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	register(t, mem, placed("z", "127.0.0.1:9002", "a", "r1"))
	for _, tt := range []struct{ name, sc string }{
		{"custom", `{"loadBalancingConfig":[{"pick_first":{}}]}`},
		{"none", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc := newFakeCC()
			r, err := grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(quietLogger()), grpcresolver.WithServiceConfig(tt.sc)).
				Build(target("greeter"), cc, resolver.BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			st := waitStates(t, cc, 1)
			if got := cc.lastServiceConfig(); got != tt.sc || (tt.sc == "") != (st.ServiceConfig == nil) {
				t.Errorf("service config %q (in state: %v), want %q", got, st.ServiceConfig != nil, tt.sc)
			}
		})
	}
}

// A locality wrapper selects one level per read; the resolver reads
// through it (Unwrap) and hands over every level, with the wrapper's place
// as the client's.
func TestLocalityWrapperUnwrapped(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	register(t, mem, placed("z", "127.0.0.1:9001", "a", "r1"), placed("r", "127.0.0.1:9002", "b", "r1"),
		placed("x", "127.0.0.1:9003", "c", "r2"))
	wrapped := locality.Wrap(mem, locality.Config{Self: locality.Locality{Zone: "a", Region: "r1"}})
	defer wrapped.Close()
	if got, _ := wrapped.GetService(context.Background(), "greeter"); len(got) != 1 {
		t.Fatalf("the wrapper reads %d instances, want the zone's 1", len(got))
	}
	cc := newFakeCC()
	r, err := grpcresolver.NewBuilder(wrapped, grpcresolver.WithLogger(quietLogger())).Build(target("greeter"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if st := waitStates(t, cc, 1); len(st.Endpoints) != 3 {
		t.Errorf("%d endpoints, want every level's 3", len(st.Endpoints))
	}
	if _, cfg := lbPolicy(t, cc.lastServiceConfig()); cfg["zone"] != "a" || cfg["region"] != "r1" {
		t.Errorf("balancer config %v, want the wrapper's place a/r1", cfg)
	}
}

// logRecorder keeps the messages at Info and above.
type logRecorder struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{l}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type lockedWriter struct{ l *logRecorder }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.l.buf.Write(p)
}

func (l *logRecorder) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// Instances without a grpc:// endpoint are said at Warn once per service,
// again only when that set changes, not again when a channel builds the
// resolver anew (idle mode).
func TestLeftOutWarnedOnce(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	httpOnly := func(id string) *registry.Instance {
		return &registry.Instance{ID: id, Name: "greeter", Endpoints: []string{"http://127.0.0.1:1"}}
	}
	register(t, mem, inst("g1", "127.0.0.1:9001", nil), httpOnly("h1"))
	var rec logRecorder
	b := grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(rec.logger()))
	const warn = "level=WARN msg=\"grpcresolver: instances without a grpc:// endpoint are left out\""
	step := func(name string, change func(), warnings int) {
		t.Helper()
		change()
		cc := newFakeCC()
		r, err := b.Build(target("greeter"), cc, resolver.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitStates(t, cc, 1) // the state after the change: its first
		r.Close()
		if got := rec.count(warn); got != warnings {
			t.Errorf("%s: %d warnings, want %d\n%s", name, got, warnings, rec.buf.String())
		}
	}
	step("first state", func() {}, 1)
	step("built again, same set", func() {}, 1)
	step("a usable instance added", func() { register(t, mem, inst("g2", "127.0.0.1:9002", nil)) }, 1)
	step("another left out", func() { register(t, mem, httpOnly("h2")) }, 2)
	step("all usable again", func() {
		mem.Deregister(context.Background(), httpOnly("h1"))
		mem.Deregister(context.Background(), httpOnly("h2"))
	}, 2)
	if rec.count("every instance has a usable endpoint again") != 1 {
		t.Errorf("no Info line when the set emptied:\n%s", rec.buf.String())
	}
}

// The default retry policy: a call in flight on a connection that dies is
// retried on another server and succeeds. Without it (a service config of
// the user's with no retry policy) the same call fails with UNAVAILABLE:
// the request had reached the server, so grpc-go's transparent retry does
// not apply.
func TestInFlightCallRetried(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []grpcresolver.Option
		want codes.Code
	}{
		{"default", nil, codes.OK},
		{"no retry policy", []grpcresolver.Option{grpcresolver.WithServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`)}, codes.Unavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := registrytest.NewMemory()
			defer mem.Close()
			s1, s2 := startServer(t), startServer(t)
			register(t, mem, placed("1", s1.addr, "a", "r1"), placed("2", s2.addr, "a", "r1"))
			conn := dial(t, grpcresolver.NewBuilder(mem, append(tt.opts, grpcresolver.WithLogger(quietLogger()))...), "regchain:///greeter")
			// Both servers READY before the call.
			testutil.WaitFor(t, 10*time.Second, "both servers answer", func() string {
				seen := map[string]bool{}
				for range 10 {
					if p, err := echo(context.Background(), conn); err == nil {
						seen[p] = true
					}
				}
				if !seen[s1.addr] || !seen[s2.addr] {
					return "not yet"
				}
				return ""
			})
			s1.hold.Store(true)
			s2.hold.Store(true)
			type result struct {
				peer string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				p, err := echo(ctx, conn)
				done <- result{p, err}
			}()
			var holder, other *server
			select {
			case <-s1.inside:
				holder, other = s1, s2
			case <-s2.inside:
				holder, other = s2, s1
			case <-time.After(10 * time.Second):
				t.Fatal("the call reached no server")
			}
			other.hold.Store(false)
			holder.Stop() // the connection dies with the call in flight
			res := <-done
			if status.Code(res.err) != tt.want {
				t.Fatalf("call: peer %q, err %v; want code %v", res.peer, res.err, tt.want)
			}
			if tt.want == codes.OK && res.peer != other.addr {
				t.Errorf("answered by %s, want the other server %s", res.peer, other.addr)
			}
		})
	}
}

// End to end with the defaults over a locality wrapper: calls go to the
// client's zone; its server dies but stays registered (a held instance, a
// lease not yet expired): calls move to the region with no failed call;
// the zone's server comes back under a new address: calls return to it.
func TestDeadZoneNoFailedCalls(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	z, r := startServer(t), startServer(t)
	register(t, mem, placed("z", z.addr, "a", "r1"), placed("r", r.addr, "b", "r1"))
	reg := locality.Wrap(mem, locality.Config{Self: locality.Locality{Zone: "a", Region: "r1"}})
	defer reg.Close()
	conn := dial(t, grpcresolver.NewBuilder(reg, grpcresolver.WithLogger(quietLogger())), "regchain:///greeter")

	var ok, failed, committed atomic.Int64
	var mu sync.Mutex
	peers := map[string]int{}
	var lastErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var hdr metadata.MD
				p, err := echo(ctx, conn, grpc.Header(&hdr))
				cancel()
				mu.Lock()
				switch {
				case err != nil && hdr != nil:
					// The server had answered when its connection died:
					// committed (gRFC A6), no retry may run it again.
					committed.Add(1)
				case err != nil:
					failed.Add(1)
					lastErr = err
				default:
					ok.Add(1)
					peers[p]++
				}
				mu.Unlock()
			}
		}()
	}
	onlyOn := func(addr string) {
		t.Helper()
		mu.Lock()
		clear(peers)
		mu.Unlock()
		testutil.WaitFor(t, time.Minute, "calls only on "+addr, func() string {
			mu.Lock()
			defer mu.Unlock()
			if len(peers) != 1 || peers[addr] < 20 {
				if len(peers) > 1 {
					clear(peers)
				}
				return "not yet"
			}
			return ""
		})
	}
	onlyOn(z.addr)
	z.Stop()
	onlyOn(r.addr)
	z2 := startServer(t)
	register(t, mem, placed("z", z2.addr, "a", "r1"))
	onlyOn(z2.addr)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d calls failed (last: %v), want 0", n, n+ok.Load()+committed.Load(), lastErr)
	}
	t.Logf("%d calls, %d failed, %d lost after the server had answered", ok.Load()+failed.Load()+committed.Load(), failed.Load(), committed.Load())
}
