package grpcbalancer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/grpcbalancer"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/locality"
)

const method = "/regchain.test.Echo/Call"

// Server modes.
const (
	modeOK        = iota
	modeFail      // every call fails with failCode
	modeAlternate // every other call fails with failCode
	modeBlock     // calls wait until the server stops
)

// server is a real gRPC server on a loopback port: an echo method (any
// method of an unknown service) whose behaviour the test sets, and the
// health service. Restart brings it back on the same address.
type server struct {
	t      *testing.T
	addr   string
	health *health.Server
	mode   atomic.Int32
	code   codes.Code // of failures: set before the mode
	calls  atomic.Int64
	inside chan struct{} // a call reached the handler (modeBlock)

	mu   sync.Mutex // guards srv and done
	srv  *grpc.Server
	done chan struct{}
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{t: t, health: health.NewServer(), code: codes.Internal, inside: make(chan struct{}, 100)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	t.Cleanup(s.Stop)
	return s
}

func (s *server) serve(lis net.Listener) {
	srv := grpc.NewServer(grpc.UnknownServiceHandler(s.handle))
	healthpb.RegisterHealthServer(srv, s.health)
	done := make(chan struct{})
	s.mu.Lock()
	s.srv, s.done = srv, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
}

func (s *server) handle(_ any, stream grpc.ServerStream) error {
	var req healthpb.HealthCheckRequest
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	n := s.calls.Add(1)
	switch s.mode.Load() {
	case modeFail:
		return status.Error(s.code, "told to fail")
	case modeAlternate:
		if n%2 == 0 {
			return status.Error(s.code, "told to fail every other call")
		}
	case modeBlock:
		s.inside <- struct{}{}
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return stream.SendMsg(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

// Stop kills the server: listener and connections closed at once (the
// clients' calls in flight see their connection reset). Idempotent.
func (s *server) Stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-done
}

// Restart serves again on the same address.
func (s *server) Restart() {
	s.t.Helper()
	var lis net.Listener
	var err error
	// The port was just released; nothing else on loopback takes it.
	if lis, err = net.Listen("tcp", s.addr); err != nil {
		s.t.Fatalf("restart on %s: %v", s.addr, err)
	}
	s.serve(lis)
}

// endpoint is an endpoint of the manual resolver's state at place l.
func endpoint(addr string, l locality.Locality) resolver.Endpoint {
	return grpcbalancer.SetLocality(resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}}, l)
}

// dial returns a client over a manual resolver holding eps, with the
// service config sc; reconnect backoff is short so that a restarted server
// is found within the test's patience.
func dial(t *testing.T, sc string, eps ...resolver.Endpoint) (*grpc.ClientConn, *manual.Resolver) {
	t.Helper()
	return dialWith(t, sc, nil, eps...)
}

// dialWith is dial with dial options of the test's own.
func dialWith(t *testing.T, sc string, opts []grpc.DialOption, eps ...resolver.Endpoint) (*grpc.ClientConn, *manual.Resolver) {
	t.Helper()
	r := manual.NewBuilderWithScheme("lbtest")
	r.InitialState(resolver.State{Endpoints: eps})
	conn, err := grpc.NewClient(r.Scheme()+":///orders", append([]grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond,
		}, MinConnectTimeout: 20 * time.Second})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, r
}

// call makes one echo call and returns the address that answered.
func call(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var p peer.Peer
	var hdr metadata.MD
	err := conn.Invoke(ctx, method, &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}, grpc.Peer(&p), grpc.Header(&hdr))
	if err != nil && hdr != nil {
		err = &committedError{err}
	}
	if p.Addr == nil {
		return "", err
	}
	return p.Addr.String(), err
}

// committedError is a call that failed after the server's response headers
// arrived: grpc-go commits a call then (gRFC A6) and never retries it, as
// the server has processed it.
type committedError struct{ error }

func (e *committedError) Unwrap() error { return e.error }

// calls makes n calls one after the other and counts answers per address
// and errors per code.
func calls(conn *grpc.ClientConn, n int) (peers map[string]int, errs map[codes.Code]int) {
	peers, errs = map[string]int{}, map[codes.Code]int{}
	for range n {
		p, err := call(context.Background(), conn)
		if err != nil {
			errs[status.Code(err)]++
			continue
		}
		peers[p]++
	}
	return peers, errs
}

// only returns "" when every call of a batch of n went to addr without
// error, else what happened.
func only(conn *grpc.ClientConn, n int, addr string) string {
	peers, errs := calls(conn, n)
	if len(errs) == 0 && len(peers) == 1 && peers[addr] == n {
		return ""
	}
	return fmt.Sprintf("peers %v errors %v, want all %d on %s", peers, errs, n, addr)
}

// loop calls without pause from a few goroutines until stopped and counts
// the failures; it is the traffic a failover must not break. Calls that
// fail after the server's response headers arrived are counted apart: gRPC
// commits a call once the server answers (gRFC A6) and no retry policy can
// save it.
type loop struct {
	ok, failed, committed atomic.Int64
	stop                  chan struct{}
	wg                    sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	peers    map[string]int64
	first    map[string]time.Time // when each peer first answered since the last reset
	inflight []time.Time          // per worker, when its current call started
	lastErr  error
}

func startLoop(conn *grpc.ClientConn, workers int) *loop {
	l := &loop{stop: make(chan struct{}), peers: map[string]int64{}, first: map[string]time.Time{},
		inflight: make([]time.Time, workers)}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.mu.Lock()
				l.inflight[w] = time.Now()
				l.mu.Unlock()
				p, err := call(context.Background(), conn)
				l.mu.Lock()
				var ce *committedError
				switch {
				case errors.As(err, &ce):
					l.committed.Add(1)
				case err != nil:
					l.failed.Add(1)
					l.lastErr = err
				default:
					l.ok.Add(1)
					l.peers[p]++
					if _, ok := l.first[p]; !ok {
						l.first[p] = time.Now()
					}
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// settled waits until every call in flight at t0 has ended (its retries
// included), so that the next fault of a test does not land on a retry of
// the previous one.
func (l *loop) settled(t *testing.T, t0 time.Time) {
	t.Helper()
	waitFor(t, "the calls in flight at the fault ended", func() string {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, at := range l.inflight {
			if at.Before(t0) {
				return "a call started before the fault still runs"
			}
		}
		return ""
	})
}

// onlyOn waits until the loop's calls all went to addr (at least 20 of
// them), counting afresh from its start and whenever another peer shows.
func (l *loop) onlyOn(t *testing.T, addr string) {
	t.Helper()
	l.mu.Lock()
	clear(l.peers)
	l.mu.Unlock()
	waitFor(t, "calls only on "+addr, func() string {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.peers) > 1 || l.peers[addr] < 20 {
			why := fmt.Sprintf("peers %v", l.peers)
			if len(l.peers) > 1 {
				clear(l.peers) // start counting afresh
			}
			return why
		}
		return ""
	})
}

func (l *loop) reset() {
	l.mu.Lock()
	clear(l.peers)
	clear(l.first)
	l.mu.Unlock()
}

// firstAfter returns how long after t0 addr first answered since the last
// reset.
func (l *loop) firstAfter(addr string, t0 time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first[addr].Sub(t0)
}

func (l *loop) Stop() (failed int64, lastErr error) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed.Load(), l.lastErr
}

// waitFor polls cond until it returns "", failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() string) {
	t.Helper()
	testutil.WaitFor(t, time.Minute, what, cond)
}
