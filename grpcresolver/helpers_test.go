package grpcresolver_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/regchain/regchain/grpcresolver"
	"github.com/regchain/regchain/registry"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// server is a real gRPC server on a loopback port with the health service
// and an echo method (any method of an unknown service; see echo) that can
// be told to hold its calls.
type server struct {
	addr   string
	health *health.Server
	srv    *grpc.Server
	hold   atomic.Bool   // echo calls wait until the server stops
	inside chan struct{} // an echo call is being held
	stop   sync.Once
	done   chan struct{}
}

func startServer(t *testing.T) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: lis.Addr().String(), health: health.NewServer(), inside: make(chan struct{}, 10), done: make(chan struct{})}
	s.srv = grpc.NewServer(grpc.UnknownServiceHandler(s.echo))
	healthpb.RegisterHealthServer(s.srv, s.health)
	go func() {
		defer close(s.done)
		s.srv.Serve(lis)
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop kills the server: its connections are closed at once, calls in
// flight included. Idempotent.
func (s *server) Stop() {
	s.stop.Do(func() {
		s.srv.Stop()
		<-s.done
	})
}

const echoMethod = "/regchain.test.Echo/Call"

func (s *server) echo(_ any, stream grpc.ServerStream) error {
	var req healthpb.HealthCheckRequest
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	if s.hold.Load() {
		s.inside <- struct{}{}
		<-stream.Context().Done() // until the server stops
		return stream.Context().Err()
	}
	return stream.SendMsg(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

// echo calls the echo method and returns the address that answered.
func echo(ctx context.Context, conn *grpc.ClientConn, opts ...grpc.CallOption) (string, error) {
	var p peer.Peer
	err := conn.Invoke(ctx, echoMethod, &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}, append(opts, grpc.Peer(&p))...)
	if err != nil || p.Addr == nil {
		return "", err
	}
	return p.Addr.String(), nil
}

func (s *server) instance(name, id string) *registry.Instance {
	return &registry.Instance{
		ID: id, Name: name, Version: "v1",
		Metadata:  map[string]string{"weight": "10", "zone": "z1"},
		Endpoints: []string{"http://127.0.0.1:1", "grpc://" + s.addr + "?isSecure=false"},
	}
}

// serviceConfig is round_robin with client-side health checking, given to
// the resolver with WithServiceConfig.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

func dial(t *testing.T, b resolver.Builder, target string, extra ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts := append([]grpc.DialOption{
		grpc.WithResolvers(b),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, extra...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// check makes one health Check RPC and returns the peer that answered.
func check(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	var p peer.Peer
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	if err != nil {
		return "", err
	}
	return p.Addr.String(), nil
}

// caller calls in a loop until stopped, counting successes per peer and
// failures.
type caller struct {
	ok     atomic.Int64
	failed atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex // guards peers; lastErr is read after Stop
	peers   map[string]int
	lastErr error
}

func startCaller(conn *grpc.ClientConn) *caller {
	c := &caller{stop: make(chan struct{}), done: make(chan struct{}), peers: make(map[string]int)}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			p, err := check(context.Background(), conn)
			c.mu.Lock()
			if err != nil {
				c.failed.Add(1)
				c.lastErr = err
			} else {
				c.ok.Add(1)
				c.peers[p]++
			}
			c.mu.Unlock()
			time.Sleep(2 * time.Millisecond) // pacing, not synchronisation
		}
	}()
	return c
}

// Stop stops the loop and waits for it; it is idempotent.
func (c *caller) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

func (c *caller) peerCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.peers)
}

// fakeCC records what a resolver pushes.
type fakeCC struct {
	resolver.ClientConn // panics on anything not overridden

	mu     sync.Mutex // guards the fields below
	states []resolver.State
	errs   []error
	scs    []string // service configs parsed
	wake   chan struct{}
}

func newFakeCC() *fakeCC { return &fakeCC{wake: make(chan struct{}, 1)} }

func (f *fakeCC) UpdateState(s resolver.State) error {
	f.mu.Lock()
	f.states = append(f.states, s)
	f.mu.Unlock()
	f.signal()
	return nil
}

func (f *fakeCC) ReportError(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
	f.signal()
}

func (f *fakeCC) ParseServiceConfig(js string) *serviceconfig.ParseResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scs = append(f.scs, js)
	return &serviceconfig.ParseResult{}
}

// lastServiceConfig returns the JSON of the last service config parsed.
func (f *fakeCC) lastServiceConfig() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.scs) == 0 {
		return ""
	}
	return f.scs[len(f.scs)-1]
}

func (f *fakeCC) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fakeCC) counts() (states, errs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.states), len(f.errs)
}

func (f *fakeCC) lastState() resolver.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[len(f.states)-1]
}

// countingRegistry counts the live watchers of the registry it wraps.
type countingRegistry struct {
	registry.Registry
	live atomic.Int64
}

func (c *countingRegistry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := c.Registry.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	c.live.Add(1)
	return &countedWatcher{Watcher: w, c: c}, nil
}

type countedWatcher struct {
	registry.Watcher
	c    *countingRegistry
	once sync.Once
}

func (w *countedWatcher) Stop() error {
	w.once.Do(func() { w.c.live.Add(-1) })
	return w.Watcher.Stop()
}

func target(name string) resolver.Target {
	var t resolver.Target
	t.URL.Scheme = grpcresolver.Scheme
	t.URL.Path = "/" + name
	return t
}
