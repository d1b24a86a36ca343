package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	contribetcd "github.com/go-kratos/kratos/contrib/registry/etcd/v2"
	"github.com/go-kratos/kratos/v2/log"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/kratosplugin"
)

// services is how many services the members are spread over; member i
// belongs to service i%services and watches the next one.
const services = 10

// tap counts one member's etcd client calls and notes the first one to
// succeed after mark (the etcd restart).
type tap struct {
	calls   atomic.Int64 // unary calls and stream messages sent
	mark    atomic.Int64 // unix nanos; 0 = not armed
	firstOK atomic.Int64 // unix nanos of the first success after mark
}

func (t *tap) ok() {
	if m := t.mark.Load(); m != 0 {
		t.firstOK.CompareAndSwap(0, time.Now().UnixNano())
	}
}

func (t *tap) dialOptions() []grpc.DialOption {
	var opts []grpc.DialOption
	if *maxDelay > 0 {
		opts = append(opts, grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay: min(100*time.Millisecond, *maxDelay), Multiplier: 1.6, Jitter: 0.2, MaxDelay: *maxDelay,
			},
			MinConnectTimeout: 5 * time.Second,
		}))
	}
	return append(opts,
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			t.calls.Add(1)
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err == nil {
				t.ok()
			}
			return err
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return &tappedStream{ClientStream: s, t: t}, nil
		}),
	)
}

type tappedStream struct {
	grpc.ClientStream
	t *tap
}

func (s *tappedStream) SendMsg(m any) error {
	s.t.calls.Add(1)
	return s.ClientStream.SendMsg(m)
}

func (s *tappedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.t.ok()
	}
	return err
}

// member is one process of the fleet.
type member struct {
	tap   tap
	cli   *clientv3.Client
	w     kratosregistry.Watcher
	quit  chan struct{} // closed by stop
	done  chan struct{} // closed when the watch loop has ended
	close func()        // ends the member's registry
}

// kind builds the registry of one member: regchain or Kratos' contrib.
type kind struct {
	name string
	// registry returns the member's Registrar and Discovery over cli, and
	// what ends it.
	registry func(cli *clientv3.Client, ns string) (kratosregistry.Registrar, kratosregistry.Discovery, func(), error)
}

var discard = log.NewStdLogger(io.Discard)

var kinds = []kind{
	{
		name: "regchain",
		registry: func(cli *clientv3.Client, ns string) (kratosregistry.Registrar, kratosregistry.Discovery, func(), error) {
			tier, err := etcd.New(etcd.Config{Client: cli, Namespace: ns, TTL: *ttl, Logger: quiet})
			if err != nil {
				return nil, nil, nil, err
			}
			opts := []chain.Option{chain.WithLogger(quiet), chain.WithOwnTiers(true)}
			if *probe > 0 {
				opts = append(opts, chain.WithProbeInterval(*probe))
			}
			c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: tier}}, opts...)
			if err != nil {
				tier.Close()
				return nil, nil, nil, err
			}
			r := kratosplugin.New(c, kratosplugin.WithLogger(discard))
			return r, r, func() { c.Close() }, nil
		},
	},
	{
		name: "kratos-contrib",
		registry: func(cli *clientv3.Client, ns string) (kratosregistry.Registrar, kratosregistry.Discovery, func(), error) {
			ctx, cancel := context.WithCancel(context.Background())
			r := contribetcd.New(cli, contribetcd.Namespace(ns), contribetcd.RegisterTTL(*ttl), contribetcd.Context(ctx))
			return r, r, cancel, nil
		},
	},
}

// start starts member i: its client, its registration and its watch.
func start(k kind, endpoint, ns string, i int) (*member, error) {
	m := &member{quit: make(chan struct{}), done: make(chan struct{})}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop(), DialOptions: m.tap.dialOptions(),
	})
	if err != nil {
		return nil, err
	}
	m.cli = cli
	reg, disc, closeReg, err := k.registry(cli, ns)
	if err != nil {
		cli.Close()
		return nil, err
	}
	m.close = closeReg
	svc := fmt.Sprintf("svc-%d", i%services)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	si := &kratosregistry.ServiceInstance{
		ID: fmt.Sprintf("%s-%04d", svc, i), Name: svc, Version: "v1",
		Metadata:  map[string]string{"weight": "10", "zone": fmt.Sprintf("z%d", i%3)},
		Endpoints: []string{fmt.Sprintf("grpc://10.1.%d.%d:9000", i/250, i%250), fmt.Sprintf("http://10.1.%d.%d:8000", i/250, i%250)},
	}
	if err := reg.Register(ctx, si); err != nil {
		m.stop()
		return nil, fmt.Errorf("register %s: %w", si.ID, err)
	}
	w, err := disc.Watch(context.Background(), fmt.Sprintf("svc-%d", (i+1)%services))
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("watch: %w", err)
	}
	m.w = w
	go m.follow()
	return m, nil
}

// follow consumes the watch as Kratos' resolvers do: every list, and a
// second's pause after an error.
func (m *member) follow() {
	defer close(m.done)
	for {
		if _, err := m.w.Next(); err != nil {
			select {
			case <-m.quit:
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// stop ends the member: its watch, its registry, its client. Its key stays
// until its lease runs out, as after a crash.
func (m *member) stop() {
	if m.w != nil {
		close(m.quit)
		m.w.Stop()
		<-m.done
	}
	if m.close != nil {
		m.close()
	}
	m.cli.Close()
}
