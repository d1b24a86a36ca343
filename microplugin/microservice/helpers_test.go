package microservice_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/harness/freeport"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/microplugin/microservice"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

const timeout = 20 * time.Second

// quiet is go-micro's logger for the tests: warnings only.
var quiet = logger.NewLogger(logger.WithLevel(logger.WarnLevel))

// Request and Response are the Greeter's messages (JSON codec).
type Request struct {
	Name string `json:"name"`
}

type Response struct {
	Node string `json:"node"`
}

// Greeter answers with its node's ID: Hello is idempotent, Write is not
// (as far as the client knows).
type Greeter struct{ id string }

func (g *Greeter) Hello(_ context.Context, _ *Request, rsp *Response) error {
	rsp.Node = g.id
	return nil
}

func (g *Greeter) Write(_ context.Context, _ *Request, rsp *Response) error {
	rsp.Node = g.id
	return nil
}

// sticky keeps registrations when asked to remove them, as the chain
// holds a dead instance's record: clients keep being offered it.
type sticky struct{ registry.Registry }

func (sticky) Deregister(context.Context, *registry.Instance) error { return nil }

// node is a go-micro server registered at the address of a proxy in front
// of it, so a test can kill it (connections reset, new ones refused), cut
// it off silently, or bring it back, while it stays registered.
type node struct {
	id     string
	addr   string // registered (the proxy's)
	target string // the server's
	proxy  *faultproxy.Proxy
}

func startNode(t *testing.T, reg mreg.Registry, id, zone, region string) *node {
	t.Helper()
	port := func() string {
		p, err := freeport.TCP()
		if err != nil {
			t.Fatal(err)
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	n := &node{id: id, addr: port(), target: port()}
	srv := server.NewServer(
		server.Name("greeter"), server.Id(id), server.Version("1.0.0"),
		server.Address(n.target), server.Advertise(n.addr),
		server.Metadata(map[string]string{locality.KeyZone: zone, locality.KeyRegion: region}),
		server.Registry(reg), server.Broker(broker.NewMemoryBroker()),
		server.Transport(transport.NewHTTPTransport()), server.WithLogger(quiet),
	)
	if err := srv.Handle(srv.NewHandler(&Greeter{id: id})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	n.revive(t)
	t.Cleanup(func() {
		n.kill()
		if err := srv.Stop(); err != nil {
			t.Errorf("stop %s: %v", id, err)
		}
	})
	return n
}

func (n *node) kill() { n.proxy.Close() }

func (n *node) revive(t *testing.T) {
	t.Helper()
	testutil.WaitFor(t, timeout, "proxy of "+n.id+" listens", func() string {
		p, err := faultproxy.Listen(n.addr, n.target)
		if err != nil {
			return err.Error()
		}
		n.proxy = p
		return ""
	})
}

func (n *node) cut()  { n.proxy.Partition() }
func (n *node) heal() { n.proxy.Heal() }

// fleet runs nodes a1, a2 (zone a of r1), b1 (zone b of r1) and c1 (zone
// c of r2) of service "greeter", registered in a registry that keeps them
// listed after they die; it returns a go-micro registry over it.
func fleet(t *testing.T) (mreg.Registry, []*node) {
	t.Helper()
	mem := registrytest.NewMemory()
	t.Cleanup(func() { mem.Close() })
	reg := microplugin.New(sticky{mem}, mreg.Logger(quiet))
	return reg, []*node{
		startNode(t, reg, "a1", "a", "r1"), startNode(t, reg, "a2", "a", "r1"),
		startNode(t, reg, "b1", "b", "r1"), startNode(t, reg, "c1", "c", "r2"),
	}
}

// newClient returns a go-micro client over reg with the Selector, Retry
// and Backoff, from a client in zone a of r1. Its attempts time out after
// attempt: go-micro's pooled connections now and then leave an attempt
// without an answer until then (go-micro issue 2694), which costs the 5s
// default for nothing in a test.
func newClient(t *testing.T, reg mreg.Registry, ej nearest.Ejection, attempt time.Duration, opts ...client.Option) (client.Client, *microservice.Selector) {
	t.Helper()
	sel := microservice.NewSelector(selector.Registry(reg),
		microservice.WithLocality(locality.Locality{Zone: "a", Region: "r1"}),
		microservice.WithEjection(ej))
	t.Cleanup(func() { sel.Close() })
	c := client.NewClient(append([]client.Option{
		client.Selector(sel),
		client.Retry(microservice.Retry(microservice.RetryConfig{Idempotent: []string{"Greeter.Hello"}})),
		client.Backoff(microservice.Backoff),
		client.Transport(transport.NewHTTPTransport()),
		client.ContentType("application/json"),
		client.RequestTimeout(10 * time.Second),
		client.WithLogger(quiet),
		// go-micro has no option for the per-attempt timeout.
		func(o *client.Options) { o.CallOptions.ConnectionTimeout = attempt },
	}, opts...)...)
	return c, sel
}

// call returns a call of endpoint answering the ID of the node that
// answered.
func call(c client.Client, endpoint string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var rsp Response
		req := c.NewRequest("greeter", endpoint, &Request{Name: "t"})
		if err := c.Call(ctx, req, &rsp); err != nil {
			return "", err
		}
		return rsp.Node, nil
	}
}

// reach makes calls until each of want has answered one.
func reach(t *testing.T, f func(ctx context.Context) (string, error), want ...string) {
	t.Helper()
	seen := map[string]bool{}
	testutil.WaitFor(t, timeout, fmt.Sprintf("calls reach %v", want), func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := f(ctx)
		if err != nil {
			return err.Error()
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

// moves runs calls while fault happens, waits until they are all answered
// by want, and fails the test if any call failed.
func moves(t *testing.T, what string, f func(ctx context.Context) (string, error), fault func(), want string) {
	t.Helper()
	l := testutil.StartLoad(f, 10*time.Second)
	fault()
	d := testutil.WaitFor(t, timeout, what+": calls move to "+want, l.Only(20, want))
	n, errs := l.Stop()
	t.Logf("%s: %d calls, %d failed, all on %s within %v", what, n, len(errs), want, d)
	if len(errs) > 0 {
		t.Fatalf("%s: failed calls: %v", what, errs)
	}
}
