package kratosplugin_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	khttp "github.com/go-kratos/kratos/v2/transport/http"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/registry"

	"github.com/regchain/regchain/internal/testsupport/kratostest"
)

// newChain returns a chain over reg as its one tier, with test-sized probe
// and call timings, and the snapshot store at path when path is not "".
// The chain and its store are closed when the test ends or by closeChain,
// which a test calls to simulate the end of a process.
func newChain(t *testing.T, reg registry.Registry, snapshotPath string) (c *chain.Chain, closeChain func()) {
	t.Helper()
	var store *file.Store
	opts := []chain.Option{
		chain.WithLogger(quietLogger),
		chain.WithProbeInterval(100 * time.Millisecond),
		chain.WithProbeTimeout(500 * time.Millisecond),
		chain.WithCallTimeout(time.Second),
		chain.WithFailbackAfter(500 * time.Millisecond),
		chain.WithFlushInterval(20 * time.Millisecond),
	}
	if snapshotPath != "" {
		var err error
		store, err = file.OpenStore(snapshotPath, file.Config{Logger: quietLogger})
		if err != nil {
			t.Fatalf("open snapshot: %v", err)
		}
		opts = append(opts, chain.WithSnapshot(store))
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: reg}}, opts...)
	if err != nil {
		if store != nil {
			store.Close()
		}
		t.Fatalf("chain.New: %v", err)
	}
	closeChain = sync.OnceFunc(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close chain: %v", err)
		}
		if store != nil {
			if err := store.Close(); err != nil {
				t.Errorf("close snapshot: %v", err)
			}
		}
	})
	t.Cleanup(closeChain)
	return c, closeChain
}

// TestEndToEnd runs Kratos apps and clients as separate "processes": the
// apps register through a chain of their own, the clients discover through
// another chain (etcd, then a bbolt snapshot), both over one real etcd.
func TestEndToEnd(t *testing.T) {
	srv := etcdtest.Start(t)
	const ns = "/e2e"
	serverChain, _ := newChain(t, newEtcd(t, srv.Endpoint(), ns), "")
	servers := kratosplugin.New(serverChain)
	snapshot := filepath.Join(t.TempDir(), "client.db")
	clientChain, closeClientChain := newChain(t, newEtcd(t, srv.Endpoint(), ns), snapshot)
	clients := kratosplugin.New(clientChain)

	one := kratostest.StartApp(t, servers, "greeter", "one")
	conn := kratostest.GRPCClient(t, clients, "greeter")
	hc := kratostest.HTTPClient(t, clients, "greeter")
	grpcCall := kratostest.GRPCCall(conn)
	httpCall := kratostest.HTTPCall(hc)
	kratostest.CallsReach(t, grpcCall, one.GRPCAddr)
	kratostest.CallsReach(t, httpCall, "one")

	// A second instance starts and receives traffic.
	two := kratostest.StartApp(t, servers, "greeter", "two")
	kratostest.CallsReach(t, grpcCall, one.GRPCAddr, two.GRPCAddr)
	kratostest.CallsReach(t, httpCall, "one", "two")

	// One stops: its traffic moves to the other.
	one.Stop(t)
	kratostest.CallsOnly(t, grpcCall, two.GRPCAddr)
	kratostest.CallsOnly(t, httpCall, "two")

	// etcd goes down: every call keeps succeeding, from the chain's view.
	srv.Stop()
	kratostest.MustCall(t, "grpc, etcd down", 20, grpcCall, two.GRPCAddr)
	kratostest.MustCall(t, "http, etcd down", 20, httpCall, "two")
	// GetService is served from the chain's memory: no network I/O, so it
	// answers at once although etcd is gone.
	start := time.Now()
	got := instancesOf(clients, "greeter")
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("GetService with etcd down took %v, want an answer from memory", d)
	}
	if want := "[two@v1.0.0{10}[grpc://" + two.GRPCAddr + " http://" + two.HTTPAddr + "]]"; got != want {
		t.Fatalf("GetService with etcd down = %s, want %s", got, want)
	}

	// New clients created during the outage connect, in this process...
	conn2 := kratostest.GRPCClient(t, clients, "greeter")
	hc2 := kratostest.HTTPClient(t, clients, "greeter")
	kratostest.CallsReach(t, kratostest.GRPCCall(conn2), two.GRPCAddr)
	kratostest.CallsReach(t, kratostest.HTTPCall(hc2), "two")

	// ...and in a client process restarted during the outage, which has
	// nothing but its snapshot file.
	for _, c := range []interface{ Close() error }{conn, hc, conn2, hc2} {
		c.Close()
	}
	closeClientChain()
	restarted, _ := newChain(t, newEtcd(t, srv.Endpoint(), ns), snapshot)
	fresh := kratosplugin.New(restarted)
	conn3 := kratostest.GRPCClient(t, fresh, "greeter")
	// WithBlock: NewClient waits for a first non-empty list and fails on any
	// error from Next, so it also checks that no transient error leaks.
	hc3 := kratostest.HTTPClient(t, fresh, "greeter", khttp.WithBlock())
	kratostest.CallsReach(t, kratostest.GRPCCall(conn3), two.GRPCAddr)
	kratostest.CallsReach(t, kratostest.HTTPCall(hc3), "two")
	st := restarted.Status()
	if len(st.Services) != 1 || st.Services[0].Source != chain.SnapshotSource {
		t.Fatalf("restarted client chain status services = %+v, want greeter served from the snapshot", st.Services)
	}
}
