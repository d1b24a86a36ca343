package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	kselector "github.com/go-kratos/kratos/v2/selector"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"go-micro.dev/v4"
	mbroker "go-micro.dev/v4/broker"
	mclient "go-micro.dev/v4/client"
	mserver "go-micro.dev/v4/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/grpcbalancer"
	"github.com/regchain/regchain/grpcresolver"
	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/microplugin/microservice"
)

// Client kinds, in the order of the report.
var kinds = []string{"grpc", "kratos", "go-micro"}

const (
	callTimeout = 2 * time.Second // each call's deadline (Kratos' default client timeout)
	workers     = 2               // callers per client kind and reader
	pause       = 10 * time.Millisecond
)

// reader is a process in one datacenter that calls "orders" with a gRPC
// client (grpcresolver with its defaults: the regchain_locality balancer
// and its retry policy), a Kratos HTTP client (kratosplugin.NewSelector and
// Retry) and a go-micro client (microservice.Nearest). All three read
// through one chain over both datacenters' etcds, its own first.
type reader struct {
	home   string
	tiers  []*etcd.Registry
	chain  *chain.Chain
	loc    locality.Registry
	grpc   *grpc.ClientConn
	kratos *khttp.Client
	ktr    *http.Transport
	micro  micro.Service
	loads  map[string]*load
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func newReader(home, other *dc, who map[string]string) (*reader, error) {
	r := &reader{home: home.name, loads: map[string]*load{}}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	var tiers []chain.Tier
	for _, d := range []*dc{home, other} {
		t, err := d.registry()
		if err != nil {
			return nil, err
		}
		r.tiers = append(r.tiers, t)
		tiers = append(tiers, chain.Tier{Name: d.name, Registry: t, ReadOnly: true})
	}
	c, err := chain.New(tiers, chain.WithName("reader-"+home.name), chain.WithLogger(quiet),
		chain.WithProbeInterval(200*time.Millisecond), chain.WithProbeTimeout(300*time.Millisecond),
		chain.WithCallTimeout(500*time.Millisecond), chain.WithFailbackAfter(time.Second),
		chain.WithGuard(chain.Guard{Window: 2 * time.Second}))
	if err != nil {
		return nil, err
	}
	r.chain = c
	self := locality.Locality{Zone: home.name, Region: region}
	r.loc = locality.Wrap(c, locality.Config{Self: self})

	// gRPC: the resolver reads every level through the wrapper and takes
	// its place; Retry (its defaults: the health check is idempotent, the
	// attempt timeout adapts) sends a call on an endpoint that went silent
	// to another one.
	r.grpc, err = grpc.NewClient("regchain:///"+service,
		grpc.WithResolvers(grpcresolver.NewBuilder(r.loc, grpcresolver.WithLogger(quiet))),
		grpcbalancer.Retry(grpcbalancer.RetryConfig{}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	health := healthpb.NewHealthClient(r.grpc)
	grpcCall := func(ctx context.Context) (string, error) {
		var p peer.Peer
		if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
			return "", err
		}
		return who[p.Addr.String()], nil
	}

	// Kratos: the selector is process-wide in Kratos and its HTTP client
	// takes it when created. This one process plays two datacenters, so
	// each reader sets its own before creating its client; a real process
	// lives in one place and sets it once.
	kselector.SetGlobalSelector(kratosplugin.NewSelector(kratosplugin.SelectorConfig{Self: self}))
	r.ktr = &http.Transport{}
	r.kratos, err = khttp.NewClient(context.Background(),
		khttp.WithEndpoint("discovery:///"+service),
		khttp.WithDiscovery(kratosplugin.New(c)),
		khttp.WithMiddleware(kratosplugin.Retry(kratosplugin.RetryConfig{})),
		khttp.WithTimeout(callTimeout),
		khttp.WithTransport(r.ktr))
	if err != nil {
		return nil, err
	}
	kratosCall := func(ctx context.Context) (string, error) {
		var reply struct {
			ID string `json:"id"`
		}
		err := r.kratos.Invoke(ctx, http.MethodGet, "/whoami", nil, &reply)
		return reply.ID, err
	}

	// go-micro: a service's client with the Nearest option.
	r.micro = micro.NewService(
		micro.Name("reader-"+home.name),
		// A client, server and broker of its own: go-micro's defaults are
		// process-wide, and this process has two readers.
		micro.Client(mclient.NewClient()),
		micro.Server(mserver.NewServer(mserver.WithLogger(microQuiet))),
		micro.Broker(mbroker.NewMemoryBroker()),
		micro.Registry(microplugin.New(c)),
		microservice.Nearest(microservice.Config{Self: self,
			Retry: microservice.RetryConfig{Idempotent: []string{"Orders.Who"}}}),
	)
	mc := r.micro.Client()
	microCall := func(ctx context.Context) (string, error) {
		var rsp WhoResponse
		err := mc.Call(ctx, mc.NewRequest(microService, "Orders.Who", &WhoRequest{}), &rsp)
		return rsp.ID, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	for kind, call := range map[string]func(context.Context) (string, error){
		"grpc": grpcCall, "kratos": kratosCall, "go-micro": microCall,
	} {
		l := newLoad(call)
		r.loads[kind] = l
		for w := range workers {
			r.wg.Add(1)
			go func() { defer r.wg.Done(); l.run(ctx, w) }()
		}
	}
	ok = true
	return r, nil
}

func (r *reader) close() {
	if r.stop != nil {
		r.stop()
	}
	r.wg.Wait()
	if r.grpc != nil {
		r.grpc.Close()
	}
	if r.kratos != nil {
		r.kratos.Close()
		r.ktr.CloseIdleConnections()
	}
	if r.micro != nil {
		// The service never ran: its AfterStop hooks (Nearest's closes
		// its selector and registry cache) run here.
		for _, f := range r.micro.Options().AfterStop {
			f()
		}
	}
	if r.loc != nil {
		r.loc.Close()
	}
	if r.chain != nil {
		r.chain.Close()
	}
	for _, t := range r.tiers {
		t.Close()
	}
}

// outcome is one call.
type outcome struct {
	start, end time.Time
	id         string // the instance that answered; "" when failed
	err        error
}

// load is the calls of one client kind: a few callers in a loop.
type load struct {
	call func(context.Context) (string, error)

	mu       sync.Mutex // guards the fields below
	out      []outcome
	inflight [workers]time.Time // per caller, when its current call started; zero: none
}

func newLoad(call func(context.Context) (string, error)) *load { return &load{call: call} }

func (l *load) run(ctx context.Context, w int) {
	for ctx.Err() == nil {
		start := time.Now()
		l.mu.Lock()
		l.inflight[w] = start
		l.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		id, err := l.call(cctx)
		cancel()
		if ctx.Err() != nil && err != nil && errors.Is(err, context.Canceled) {
			return // the drill is over
		}
		l.mu.Lock()
		l.inflight[w] = time.Time{}
		if err != nil {
			id = ""
		}
		l.out = append(l.out, outcome{start: start, end: time.Now(), id: id, err: err})
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// since returns the outcomes of the calls that ended at or after t, and
// whether a call that started before t is still running.
func (l *load) since(t time.Time) (out []outcome, older bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.out) - 1; i >= 0 && !l.out[i].end.Before(t); i-- {
		out = append(out, l.out[i])
	}
	for _, s := range l.inflight {
		older = older || (!s.IsZero() && s.Before(t))
	}
	// Oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, older
}
