package microservice_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/microplugin/etcdchain"
	"github.com/regchain/regchain/microplugin/microservice"
)

// TestCloseOnStop: a go-micro service over etcdchain.NewRegistry (a
// chain, an etcd client, a snapshot) with CloseOnStop and Nearest leaves
// nothing running once it has stopped: the chain, its etcd client and the
// selector's registry cache are closed by the service's Stop, with no
// code of the program's own.
func TestCloseOnStop(t *testing.T) {
	etcd := shared.Server(t)
	// etcd starts serving clients on goroutines of its own: one request
	// has them all running before the baseline is taken.
	warm, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint()}, DialTimeout: timeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := warm.Get(context.Background(), "warm-up"); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	baseline := goleak.IgnoreCurrent()
	reg := etcdchain.NewRegistry(mreg.Addrs(etcd.Endpoint()), mreg.Logger(quiet),
		etcdchain.SnapshotPath(filepath.Join(t.TempDir(), "registry.snapshot")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := micro.NewService(
		micro.Context(ctx), // Run returns, stopping the service, when ctx is done (or on SIGTERM)
		micro.Server(server.NewServer(server.Address("127.0.0.1:0"), server.WithLogger(quiet))),
		micro.Client(client.NewClient(client.WithLogger(quiet), client.ContentType("application/json"))),
		micro.Name("greeter"),
		micro.Registry(reg),
		micro.Broker(broker.NewMemoryBroker()),
		micro.Transport(transport.NewHTTPTransport()),
		microservice.Nearest(microservice.Config{Retry: microservice.RetryConfig{Idempotent: []string{"Greeter.Hello"}}}),
		microservice.CloseOnStop(),
	)
	if err := svc.Server().Handle(svc.Server().NewHandler(&Greeter{id: "self"})); err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- svc.Run() }()
	if _, ok := svc.Options().Client.Options().Selector.(*microservice.Selector); !ok {
		t.Fatalf("the service's client selector is %T, want *microservice.Selector", svc.Options().Client.Options().Selector)
	}
	reach(t, call(svc.Client(), "Greeter.Hello"), "self")
	if etcdchain.Chain(reg) == nil {
		t.Fatal("no chain while the service runs")
	}
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Run did not return after its context ended")
	}
	if c := etcdchain.Chain(reg); c != nil {
		t.Fatal("the chain is still open after the service stopped")
	}
	// Everything the registry and the service started ends.
	testutil.WaitFor(t, timeout, "no goroutine left", func() string {
		runtime.GC() // go-micro's response cache stops its janitor from a finalizer
		if err := goleak.Find(baseline); err != nil {
			return err.Error()
		}
		return ""
	})
}
