// Command micro runs a Go-Micro RPC service and a client over a regchain
// chain (an in-process etcd, then a bbolt snapshot), and shows discovery
// surviving an etcd outage: calls keep working, and a client started while
// etcd is down still finds the service from the snapshot. It needs nothing
// installed and exits by itself:
//
//	go run ./examples/micro
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/microplugin"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "micro:", err)
		os.Exit(1)
	}
}

// Request is the Greeter.Hello request.
type Request struct {
	Name string `json:"name"`
}

// Response is the Greeter.Hello response.
type Response struct {
	Greeting string `json:"greeting"`
}

// Greeter is a go-micro handler: no protoc needed, go-micro serves the
// exported methods of a plain struct, here with the JSON codec.
type Greeter struct{ Node string }

// Hello greets req.Name and says which node answered.
func (g *Greeter) Hello(ctx context.Context, req *Request, rsp *Response) error {
	rsp.Greeting = fmt.Sprintf("hello %s, from %s", req.Name, g.Node)
	return nil
}

// Only warnings are logged, to keep the demo's output readable: quiet is
// go-micro's logger (which prints to stdout), warnLog regchain's (stderr).
var (
	quiet   = logger.NewLogger(logger.WithLevel(logger.WarnLevel))
	warnLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
)

// node is one process's registry: a chain over etcd with a snapshot file.
type node struct {
	chain *chain.Chain
	store *file.Store
}

func newNode(etcdAddr, snapshot string) (*node, error) {
	backend, err := etcd.New(etcd.Config{
		Endpoints:   []string{etcdAddr},
		Namespace:   "/regchain-example",
		TTL:         5 * time.Second,
		Timeout:     time.Second,
		DialTimeout: time.Second,
		MaxBackoff:  time.Second,
		Logger:      warnLog,
	})
	if err != nil {
		return nil, err
	}
	store, err := file.OpenStore(snapshot, file.Config{Logger: warnLog})
	if err != nil {
		backend.Close()
		return nil, err
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: backend}},
		chain.WithSnapshot(store), chain.WithOwnTiers(true), chain.WithLogger(warnLog),
		chain.WithProbeInterval(200*time.Millisecond), chain.WithCallTimeout(time.Second))
	if err != nil {
		store.Close()
		backend.Close()
		return nil, err
	}
	return &node{chain: c, store: store}, nil
}

func (n *node) close() {
	n.chain.Close()
	n.store.Close()
}

// service is a go-micro service process: an RPC server registered through
// the plugin on its own chain.
type service struct {
	node *node
	srv  server.Server
}

// startService starts the greeter's node id, listening on a free port.
func startService(etcdAddr, snapshot, id string, opts ...server.Option) (*service, error) {
	n, err := newNode(etcdAddr, snapshot)
	if err != nil {
		return nil, err
	}
	// readme:begin micro
	srv := server.NewServer(append([]server.Option{
		server.Name("greeter"), server.Id(id), server.Version("1.0.0"), server.Address("127.0.0.1:0"),
		server.Registry(microplugin.New(n.chain, mreg.Logger(quiet))),
		server.Broker(broker.NewMemoryBroker()), server.Transport(transport.NewHTTPTransport()),
		server.WithLogger(quiet),
	}, opts...)...)
	// readme:end micro
	if err := srv.Handle(srv.NewHandler(&Greeter{Node: "greeter-" + id})); err != nil {
		n.close()
		return nil, err
	}
	if err := srv.Start(); err != nil {
		n.close()
		return nil, err
	}
	return &service{node: n, srv: srv}, nil
}

// stop deregisters the node and stops it.
func (s *service) stop() error {
	err := s.srv.Stop()
	s.node.close()
	return err
}

// caller is a go-micro client process: a client whose selector (and its
// registry cache) reads the plugin on the process's own chain.
type caller struct {
	node *node
	reg  *microplugin.Registry
	sel  selector.Selector
	cli  client.Client
}

func newCaller(etcdAddr, snapshot string, opts ...selector.Option) (*caller, error) {
	n, err := newNode(etcdAddr, snapshot)
	if err != nil {
		return nil, err
	}
	reg := microplugin.New(n.chain, mreg.Logger(quiet))
	sel := selector.NewSelector(append([]selector.Option{selector.Registry(reg)}, opts...)...)
	cli := client.NewClient(client.Selector(sel), client.Transport(transport.NewHTTPTransport()),
		client.ContentType("application/json"), client.WithLogger(quiet), client.RequestTimeout(5*time.Second))
	return &caller{node: n, reg: reg, sel: sel, cli: cli}, nil
}

// hello calls Greeter.Hello on whichever node the selector picks.
func (c *caller) hello(name string) (string, error) {
	req := c.cli.NewRequest("greeter", "Greeter.Hello", &Request{Name: name}, client.WithContentType("application/json"))
	var rsp Response
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.cli.Call(ctx, req, &rsp); err != nil {
		return "", err
	}
	return rsp.Greeting, nil
}

func (c *caller) close() {
	// go-micro clients have no Close; changing the pool size closes the
	// pooled connections, so the servers' connection goroutines end too.
	_ = c.cli.Init(client.PoolSize(0))
	c.sel.Close()
	c.node.close()
}

// source returns the chain's discovery source for the greeter.
func (c *caller) source() string {
	for _, s := range c.node.chain.Status().Services {
		if s.Name == "greeter" {
			return s.Source
		}
	}
	return "none"
}

// run is the whole demo; it writes what happens to w.
func run(w io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "regchain-micro-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	etcdSrv, err := embedetcd.Start(filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer etcdSrv.Stop()
	fmt.Fprintln(w, "etcd started")

	// The service process: its own chain, registered through the plugin.
	svc, err := startService(etcdSrv.Endpoint(), filepath.Join(dir, "server.snapshot"), "1")
	if err != nil {
		return err
	}
	defer svc.stop()
	fmt.Fprintln(w, "service greeter registered")

	// The client process, with its own chain and snapshot file.
	snapshot := filepath.Join(dir, "client.snapshot")
	c1, err := newCaller(etcdSrv.Endpoint(), snapshot)
	if err != nil {
		return err
	}
	closeC1 := c1.close
	defer func() {
		if closeC1 != nil {
			closeC1()
		}
	}()
	msg, err := c1.hello("alice")
	if err != nil {
		return fmt.Errorf("call with etcd up: %w", err)
	}
	fmt.Fprintln(w, "call:", msg)

	// Outage: the chain keeps serving what it knows.
	etcdSrv.Stop()
	fmt.Fprintln(w, "etcd stopped")
	msg, err = c1.hello("bob")
	if err != nil {
		return fmt.Errorf("call with etcd down: %w", err)
	}
	fmt.Fprintln(w, "call:", msg)

	// A client process that starts during the outage finds the service in
	// the snapshot its chain left on disk.
	closeC1()
	closeC1 = nil
	c2, err := newCaller(etcdSrv.Endpoint(), snapshot)
	if err != nil {
		return err
	}
	defer c2.close()
	msg, err = c2.hello("carol")
	if err != nil {
		return fmt.Errorf("call from a client started with etcd down: %w", err)
	}
	fmt.Fprintf(w, "new client (discovery source: %s) call: %s\n", c2.source(), msg)
	return nil
}
