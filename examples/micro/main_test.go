package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// go-micro's client and server packages start goroutines when imported:
// those are ignored, anything started by the tests is not.
func TestMain(m *testing.M) { os.Exit(testutil.MainIgnoringImports(m, nil)) }

const waitFor = 20 * time.Second

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, out.String())
	}
	want := []string{
		"etcd started",
		"service greeter registered",
		"call: hello alice, from greeter-1",
		"etcd stopped",
		"call: hello bob, from greeter-1",
		"new client (discovery source: snapshot) call: hello carol, from greeter-1",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// viewRecorder is a selector strategy (go-micro's Random) that records the
// nodes the selector's registry cache handed it, so the test can wait on
// what the client sees instead of sleeping.
type viewRecorder struct {
	mu    sync.Mutex
	nodes []string
}

func (v *viewRecorder) strategy(services []*mreg.Service) selector.Next {
	var ids []string
	for _, s := range services {
		for _, n := range s.Nodes {
			ids = append(ids, n.Id)
		}
	}
	slices.Sort(ids)
	v.mu.Lock()
	v.nodes = ids
	v.mu.Unlock()
	return selector.Random(services)
}

// view asks the selector for the greeter and returns the nodes it saw.
func (v *viewRecorder) view(t *testing.T, sel selector.Selector) []string {
	t.Helper()
	if _, err := sel.Select("greeter"); err != nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.nodes)
}

// cacheTTL makes the selector's registry cache expire quickly, so that
// calls go through the plugin to the chain again during the test.
func cacheTTL(d time.Duration) selector.Option {
	return func(o *selector.Options) {
		// go-micro reads this untyped key (selector/default.go).
		//lint:ignore SA1029 the key is go-micro's, a plain string
		o.Context = context.WithValue(context.Background(), "selector_ttl", d)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", waitFor, what)
		}
		<-tick.C
	}
}

// mustHello calls the greeter and returns the node that answered.
func mustHello(t *testing.T, c *caller) string {
	t.Helper()
	msg, err := c.hello("test")
	if err != nil {
		t.Fatalf("call failed: %v", err)
	}
	_, from, ok := strings.Cut(msg, "from ")
	if !ok {
		t.Fatalf("unexpected greeting %q", msg)
	}
	return from
}

// TestEndToEnd runs real go-micro servers and a client over the plugin on
// chains over a real in-process etcd: the calls go through go-micro's
// selector and its registry cache.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	etcdSrv, err := embedetcd.Start(filepath.Join(dir, "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcdSrv.Stop)
	addr := etcdSrv.Endpoint()

	// Node 1, with go-micro's HTTP broker registering its own service in
	// the same registry, from the same process.
	got := make(chan string, 16)
	a, err := startService(addr, filepath.Join(dir, "a.snapshot"), "1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.stop() })
	br := broker.NewBroker(broker.Registry(a.srv.Options().Registry), broker.Addrs("127.0.0.1:0"))
	if err := br.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { br.Disconnect() })
	sub, err := br.Subscribe("greeter.events", func(e broker.Event) error {
		got <- string(e.Message().Body)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })

	rec := &viewRecorder{}
	const ttl = 300 * time.Millisecond
	c, err := newCaller(addr, filepath.Join(dir, "client.snapshot"), selector.SetStrategy(rec.strategy), cacheTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	closeC := sync.OnceFunc(c.close)
	t.Cleanup(closeC)

	if from := mustHello(t, c); from != "greeter-1" {
		t.Fatalf("answered by %s, want greeter-1", from)
	}
	t.Run("broker service next to the RPC service", func(t *testing.T) {
		names := func() []string {
			list, err := c.reg.ListServices()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, s := range list {
				out = append(out, s.Name)
			}
			return out
		}
		waitUntil(t, "both services are listed", func() bool {
			return slices.Equal(names(), []string{"greeter", "micro.http.broker"})
		})
		svcs, err := c.reg.GetService("micro.http.broker")
		if err != nil || len(svcs) != 1 || len(svcs[0].Nodes) != 1 || svcs[0].Nodes[0].Metadata["topic"] != "greeter.events" {
			t.Fatalf("broker service = %+v, %v; want one node subscribed to greeter.events", svcs, err)
		}
		// A publisher finds the subscriber's broker through the registry.
		pub := broker.NewBroker(broker.Registry(c.reg), broker.Addrs("127.0.0.1:0"))
		if err := pub.Connect(); err != nil {
			t.Fatal(err)
		}
		defer pub.Disconnect()
		if err := pub.Publish("greeter.events", &broker.Message{Body: []byte("hi")}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		select {
		case body := <-got:
			if body != "hi" {
				t.Errorf("subscriber got %q, want hi", body)
			}
		case <-time.After(waitFor):
			t.Fatal("the subscriber got nothing")
		}
	})

	// A second node joins: the client's cache learns it from the watch and
	// sends it traffic.
	b, err := startService(addr, filepath.Join(dir, "b.snapshot"), "2")
	if err != nil {
		t.Fatal(err)
	}
	stopB := sync.OnceFunc(func() { b.stop() })
	t.Cleanup(stopB)
	both := []string{"greeter-1", "greeter-2"}
	waitUntil(t, "the client sees both nodes", func() bool { return slices.Equal(rec.view(t, c.sel), both) })
	waitUntil(t, "node 2 gets a call", func() bool { return mustHello(t, c) == "greeter-2" })

	// It leaves: go-micro's server deregisters it on Stop, with a bare node.
	stopB()
	waitUntil(t, "the client drops node 2", func() bool { return slices.Equal(rec.view(t, c.sel), []string{"greeter-1"}) })
	for range 10 {
		if from := mustHello(t, c); from != "greeter-1" {
			t.Fatalf("answered by %s after it left", from)
		}
	}

	// etcd stops: the chain serves what it knows, the calls keep working,
	// also after the selector's cache expired and asked the plugin again.
	etcdSrv.Stop()
	waitUntil(t, "the client's chain sees etcd down", func() bool {
		st := c.node.chain.Status()
		return len(st.Tiers) == 1 && !st.Tiers[0].Up
	})
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); {
		if from := mustHello(t, c); from != "greeter-1" {
			t.Fatalf("answered by %s during the outage", from)
		}
	}

	// A client process started during the outage finds the service in the
	// snapshot the first one left.
	closeC()
	c2, err := newCaller(addr, filepath.Join(dir, "client.snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.close)
	if from := mustHello(t, c2); from != "greeter-1" {
		t.Fatalf("new client answered by %s, want greeter-1", from)
	}
	if src := c2.source(); src != "snapshot" {
		t.Errorf("new client's discovery source = %s, want snapshot", src)
	}
}
