package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	mbroker "go-micro.dev/v4/broker"
	mlogger "go-micro.dev/v4/logger"
	mserver "go-micro.dev/v4/server"
	mtransport "go-micro.dev/v4/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/harness/freeport"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/registry"
)

// The services every instance runs: "orders" over gRPC (grpc-go's health
// service, which says who answered by the address it answers from) and
// HTTP (GET /whoami), and "orders-micro" as a go-micro service
// (Orders.Who). Every call of the drill reads and changes nothing:
// idempotent.
const (
	service      = "orders"
	microService = "orders-micro"
	region       = "eu"
	ttl          = 2 * time.Second // leases of instances and mirrored records
)

var microQuiet = mlogger.NewLogger(mlogger.WithLevel(mlogger.FatalLevel))

// dc is one datacenter: its etcd and its instances.
type dc struct {
	name string
	etcd *embedetcd.Server
	apps []*app
}

func (d *dc) registry() (*etcd.Registry, error) {
	return etcd.New(etcd.Config{Endpoints: []string{d.etcd.Endpoint()}, TTL: ttl,
		MaxBackoff: 300 * time.Millisecond, Timeout: time.Second, DialTimeout: time.Second, Logger: quiet})
}

// place is the locality metadata of the datacenter's instances.
func (d *dc) place() map[string]string {
	return map[string]string{locality.KeyZone: d.name, locality.KeyRegion: region}
}

// kill stops the datacenter as a power loss does: its instances' servers
// stop (connections reset, new ones refused) without deregistering, and
// its etcd stops.
func (d *dc) kill() {
	var wg sync.WaitGroup
	for _, a := range d.apps {
		wg.Add(1)
		go func() { defer wg.Done(); a.kill() }()
	}
	wg.Wait()
	d.etcd.Stop()
}

// revive starts the datacenter again: etcd on its data, then its
// instances, which register anew.
func (d *dc) revive(ctx context.Context) error {
	if err := d.etcd.Start(); err != nil {
		return err
	}
	for _, a := range d.apps {
		if err := a.start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// cut cuts the datacenter off silently: traffic to its etcd and its
// instances is held (connections stay open, nothing is reset), as when a
// link drops packets.
func (d *dc) cut() {
	d.etcd.Proxy().Partition()
	for _, a := range d.apps {
		a.link(func(p *faultproxy.Proxy) { p.Partition() })
	}
}

// heal ends cut.
func (d *dc) heal() {
	d.etcd.Proxy().Heal()
	for _, a := range d.apps {
		a.link(func(p *faultproxy.Proxy) { p.Heal() })
	}
}

// app is one instance: a gRPC, an HTTP and a go-micro server, each behind
// a proxy whose address is what the instance registers (the proxy is its
// network link: it can be cut), registered in its datacenter's etcd.
type app struct {
	id    string
	dc    *dc
	addrs [3]string // registered: gRPC, HTTP, go-micro (the proxies')

	mu      sync.Mutex // guards the fields below
	proxies [3]*faultproxy.Proxy
	reg     *etcd.Registry
	grpc    *grpc.Server
	http    *http.Server
	micro   mserver.Server
	wg      sync.WaitGroup // the servers' goroutines
}

const (
	linkGRPC = iota
	linkHTTP
	linkMicro
)

func newApp(d *dc, id string) (*app, error) {
	a := &app{id: id, dc: d}
	for i := range a.addrs {
		// Ports below the ephemeral range stay free for the restart.
		p, err := freeport.TCP()
		if err != nil {
			return nil, err
		}
		a.addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return a, nil
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// start starts the servers and registers the instance.
func (a *app) start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var targets [3]string

	gl, err := listen()
	if err != nil {
		return err
	}
	a.grpc = grpc.NewServer()
	healthpb.RegisterHealthServer(a.grpc, health.NewServer())
	targets[linkGRPC] = gl.Addr().String()
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.grpc.Serve(gl) }()

	hl, err := listen()
	if err != nil {
		return err
	}
	id := a.id
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q}`, id)
	})
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	targets[linkHTTP] = hl.Addr().String()
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.http.Serve(hl) }()

	if a.reg, err = a.dc.registry(); err != nil {
		return err
	}
	// The go-micro server registers itself through microplugin, as a
	// go-micro service over regchain does.
	ml, err := listen()
	if err != nil {
		return err
	}
	targets[linkMicro] = ml.Addr().String()
	ml.Close() // go-micro listens by itself, on this port
	a.micro = mserver.NewServer(
		mserver.Name(microService), mserver.Id(a.id), mserver.Version("v1"),
		mserver.Address(targets[linkMicro]), mserver.Advertise(a.addrs[linkMicro]),
		mserver.Metadata(a.dc.place()),
		mserver.Registry(microplugin.New(a.reg)), mserver.RegisterTTL(ttl), mserver.RegisterInterval(time.Hour),
		mserver.Broker(mbroker.NewMemoryBroker()), mserver.Transport(mtransport.NewHTTPTransport()),
		mserver.WithLogger(microQuiet),
	)
	if err := a.micro.Handle(a.micro.NewHandler(&Orders{id: a.id})); err != nil {
		return err
	}

	for i, t := range targets {
		p, err := listenProxy(ctx, a.addrs[i], t)
		if err != nil {
			return err
		}
		a.proxies[i] = p
	}
	if err := a.micro.Start(); err != nil {
		return err
	}
	// A process retries its registrations until they are written: an etcd
	// that has just restarted on a busy machine may time the first one out.
	// (go-micro's Start registers once and logs a failure; registering
	// again updates the record in place.)
	micro := a.micro.(interface{ Register() error })
	if err := untilWritten(ctx, micro.Register); err != nil {
		return err
	}
	in := &registry.Instance{ID: a.id, Name: service, Version: "v1",
		Endpoints: []string{"grpc://" + a.addrs[linkGRPC], "http://" + a.addrs[linkHTTP]},
		Metadata:  a.dc.place()}
	return untilWritten(ctx, func() error { return a.reg.Register(ctx, in) })
}

// untilWritten calls register until it succeeds or fails for another
// reason than an unreachable registry, or ctx ends.
func untilWritten(ctx context.Context, register func() error) error {
	for {
		err := register()
		if err == nil || !errors.Is(err, registry.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listenProxy opens a proxy on addr, waiting while the port is still held
// by the proxy that had it.
func listenProxy(ctx context.Context, addr, target string) (*faultproxy.Proxy, error) {
	for {
		p, err := faultproxy.Listen(addr, target)
		if err == nil {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *app) link(f func(*faultproxy.Proxy)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.proxies {
		if p != nil {
			f(p)
		}
	}
}

// kill stops the instance as a killed process stops: connections reset,
// new ones refused, no deregistration (its lease runs out).
func (a *app) kill() { a.halt(false) }

// stopServers stops the servers but leaves the registration alive: a
// process that died hard while its lease is still kept alive (or not yet
// expired) and the readers' guards hold its record.
func (a *app) stopServers() { a.halt(true) }

// halt closes the instance's links (connections reset, new ones refused)
// and stops its servers; its registration lives on with keep, else the
// registry is closed first, without deregistering.
func (a *app) halt(keep bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, p := range a.proxies {
		if p != nil {
			p.Close()
			a.proxies[i] = nil
		}
	}
	if !keep && a.reg != nil {
		a.reg.Close() // first: the go-micro server's deregistration fails at once
		a.reg = nil
	}
	if a.grpc != nil {
		a.grpc.Stop()
		a.http.Close()
		if keep {
			// go-micro's Stop deregisters: its registry is taken away first.
			a.micro.Init(mserver.Registry(microplugin.New(deadRegistry{})))
		}
		a.micro.Stop()
		a.grpc, a.http, a.micro = nil, nil, nil
	}
	a.wg.Wait()
}

// deadRegistry refuses everything, as a registry of a dead process.
type deadRegistry struct{ registry.Registry }

var errDead = errors.New("multidc: the process is dead")

func (deadRegistry) Deregister(context.Context, *registry.Instance) error { return errDead }
func (deadRegistry) Register(context.Context, *registry.Instance) error   { return errDead }

// Orders is the go-micro handler.
type Orders struct{ id string }

// WhoRequest and WhoResponse are Orders.Who's messages (JSON).
type (
	WhoRequest  struct{}
	WhoResponse struct {
		ID string `json:"id"`
	}
)

// Who answers with the instance's ID.
func (o *Orders) Who(_ context.Context, _ *WhoRequest, rsp *WhoResponse) error {
	rsp.ID = o.id
	return nil
}
