package microplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/registry/cache"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// fleetService is a go-micro service of n nodes with the node metadata
// go-micro's server sets, and eps RPC endpoint descriptors.
func fleetService(n, eps int) *mreg.Service {
	svc := &mreg.Service{Name: "greeter", Version: "1.0.0", Metadata: map[string]string{"team": "core"}}
	for i := range eps {
		svc.Endpoints = append(svc.Endpoints, &mreg.Endpoint{
			Name:     fmt.Sprintf("Greeter.Call%d", i),
			Request:  &mreg.Value{Name: "Request", Type: "Request", Values: []*mreg.Value{{Name: "name", Type: "string"}}},
			Response: &mreg.Value{Name: "Response", Type: "Response", Values: []*mreg.Value{{Name: "msg", Type: "string"}}},
			Metadata: map[string]string{"stream": "false"},
		})
	}
	for i := range n {
		svc.Nodes = append(svc.Nodes, &mreg.Node{
			Id:      fmt.Sprintf("greeter-%02d", i),
			Address: fmt.Sprintf("10.0.0.%d:9000", i+1),
			Metadata: map[string]string{
				"transport": "grpc", "protocol": "grpc", "server": "grpc",
				"broker": "http", "registry": "regchain",
			},
		})
	}
	return svc
}

// newChainPlugin returns a plugin over a chain over one Memory tier, so
// reads go through the chain's SharedReader.
func newChainPlugin(tb testing.TB) (*Registry, *chain.Chain) {
	tb.Helper()
	mem := registrytest.NewMemoryNamed("m")
	c, err := chain.New([]chain.Tier{{Name: "m", Registry: mem}},
		chain.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), chain.WithOwnTiers(true))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return New(c, mreg.Logger(&logRecorder{})), c
}

func nodeIDs(svcs []*mreg.Service) []string {
	var ids []string
	for _, s := range svcs {
		for _, n := range s.Nodes {
			ids = append(ids, n.Id)
		}
	}
	return ids
}

// Over a SharedReader, reads are served from the per-state conversion and
// follow every state change.
func TestGetServiceSharedFollowsStates(t *testing.T) {
	p, _ := newChainPlugin(t)
	svc := fleetService(3, 1)
	mustRegister(t, p, svc)
	want := []string{"greeter-00", "greeter-01", "greeter-02"}
	testutil.WaitFor(t, waitFor, "three nodes", func() string {
		svcs, err := p.GetService(svc.Name)
		if got := nodeIDs(svcs); err != nil || !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("GetService = %v, %v", got, err)
		}
		return ""
	})
	first, _ := p.GetService(svc.Name)
	if len(first) != 1 || !reflect.DeepEqual(first[0].Metadata, svc.Metadata) || len(first[0].Endpoints) != 1 ||
		!reflect.DeepEqual(first[0].Endpoints[0], svc.Endpoints[0]) {
		t.Fatalf("GetService = %+v, want the service metadata and endpoint of %+v", first[0], svc)
	}
	mustRegister(t, p, node(svc, "greeter-09"))
	testutil.WaitFor(t, waitFor, "the new node", func() string {
		svcs, err := p.GetService(svc.Name)
		if got := nodeIDs(svcs); err != nil || len(got) != 4 {
			return fmt.Sprintf("GetService = %v, %v", got, err)
		}
		return ""
	})
	mustDeregister(t, p, &mreg.Service{Name: svc.Name, Nodes: []*mreg.Node{{Id: "greeter-00"}, {Id: "greeter-01"}, {Id: "greeter-02"}, {Id: "greeter-09"}}})
	testutil.WaitFor(t, waitFor, "not found", func() string {
		svcs, err := p.GetService(svc.Name)
		if !errors.Is(err, mreg.ErrNotFound) {
			return fmt.Sprintf("GetService = %v, %v", nodeIDs(svcs), err)
		}
		return ""
	})
	// The conversion of a service read as not found is not kept: over a
	// Deriver it lives in the chain's state; registry.TestMemoContent holds
	// registry.Memo's own entry to it.
}

// What a read returns is the caller's, as far as go-micro's cache copies:
// Services, Nodes and Endpoints. Changing them does not change later reads.
func TestGetServiceSharedCopies(t *testing.T) {
	p, _ := newChainPlugin(t)
	svc := fleetService(3, 2)
	mustRegister(t, p, svc)
	testutil.WaitFor(t, waitFor, "three nodes", func() string {
		svcs, err := p.GetService(svc.Name)
		if got := nodeIDs(svcs); err != nil || len(got) != 3 {
			return fmt.Sprintf("GetService = %v, %v", got, err)
		}
		return ""
	})
	a, err := p.GetService(svc.Name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.GetService(svc.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two reads of one state differ:\n%+v\n%+v", a, b)
	}
	if a[0] == b[0] || a[0].Nodes[0] == b[0].Nodes[0] || a[0].Endpoints[0] == b[0].Endpoints[0] {
		t.Fatal("two reads share a Service, Node or Endpoint")
	}
	if cap(a[0].Nodes) != len(a[0].Nodes) || cap(a[0].Endpoints) != len(a[0].Endpoints) {
		t.Fatal("a returned slice has room to grow into another's")
	}
	a[0].Name = "changed"
	a[0].Nodes[0].Id = "changed"
	a[0].Nodes[0].Address = "changed:1"
	a[0].Nodes = append(a[0].Nodes[:1], &mreg.Node{Id: "appended"})
	a[0].Endpoints[0].Name = "changed"
	c, err := p.GetService(svc.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b, c) {
		t.Fatalf("changing a read changed a later one:\n%+v\n%+v", b, c)
	}
}

// A state's conversion problems are logged once, not at every read.
func TestGetServiceSharedReportsOncePerState(t *testing.T) {
	mem := registrytest.NewMemoryNamed("m")
	c, err := chain.New([]chain.Tier{{Name: "m", Registry: mem}},
		chain.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), chain.WithOwnTiers(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rec := &logRecorder{}
	p := New(c, mreg.Logger(rec))
	ctx := context.Background()
	// An undecodable descriptor is dropped (the node is kept) and logged.
	for _, in := range []*registry.Instance{
		{ID: "a", Name: "mixed", Endpoints: []string{"grpc://10.0.0.1:9000"}, Metadata: map[string]string{MetadataKeyEndpoints: "not json"}},
		{ID: "b", Name: "mixed", Endpoints: []string{"grpc://10.0.0.2:9000"}},
	} {
		if err := mem.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, waitFor, "both nodes", func() string {
		svcs, err := p.GetService("mixed")
		if got := nodeIDs(svcs); err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
			return fmt.Sprintf("GetService = %v, %v", got, err)
		}
		return ""
	})
	for range 5 {
		if _, err := p.GetService("mixed"); err != nil {
			t.Fatal(err)
		}
	}
	if n := rec.count(MetadataKeyEndpoints); n != 1 {
		t.Errorf("the undecodable descriptor was logged %d times, want once", n)
	}
}

func TestReadContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rc readContexts
		a := rc.get(10 * time.Second)
		if d, ok := a.Deadline(); !ok || !d.Equal(time.Now().Add(10*time.Second)) {
			t.Fatalf("Deadline = %v, %v, want now+10s", d, ok)
		}
		time.Sleep(999 * time.Millisecond)
		if b := rc.get(10 * time.Second); b != a {
			t.Fatal("a context younger than a tenth of the timeout was not reused")
		}
		time.Sleep(time.Millisecond)
		b := rc.get(10 * time.Second)
		if b == a {
			t.Fatal("a context older than a tenth of the timeout was reused")
		}
		if d, _ := b.Deadline(); !d.Equal(time.Now().Add(10 * time.Second)) {
			t.Fatalf("Deadline = %v, want now+10s", d)
		}
		if c := rc.get(time.Second); c == b {
			t.Fatal("a context made for another timeout was reused")
		}
		<-a.Done()
		if !errors.Is(a.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want DeadlineExceeded", a.Err())
		}
		<-b.Done()
	})
}

// benchPlugin returns a plugin over a chain holding svc, and go-micro's
// cache over that plugin, both warm.
func benchPlugin(b *testing.B, svc *mreg.Service) (*Registry, cache.Cache) {
	p, _ := newChainPlugin(b)
	mustRegister(b, p, svc)
	testutil.WaitFor(b, waitFor, "every node", func() string {
		svcs, err := p.GetService(svc.Name)
		if got := nodeIDs(svcs); err != nil || len(got) != len(svc.Nodes) {
			return fmt.Sprintf("GetService = %v, %v", got, err)
		}
		return ""
	})
	c := cache.New(p)
	b.Cleanup(c.Stop)
	if svcs, err := c.GetService(svc.Name); err != nil || len(nodeIDs(svcs)) != len(svc.Nodes) {
		b.Fatalf("cache GetService = %v, %v", nodeIDs(svcs), err)
	}
	return p, c
}

// BenchmarkGetService reads one service of 10 nodes (with go-micro's node
// metadata; with and without RPC endpoint descriptors) through the plugin
// over a chain, and through go-micro's registry/cache over the same
// plugin, in the same run.
func BenchmarkGetService(b *testing.B) {
	for _, eps := range []int{0, 2} {
		svc := fleetService(10, eps)
		shape := fmt.Sprintf("nodes=10,endpoints=%d", eps)
		b.Run("microplugin/"+shape, func(b *testing.B) {
			p, _ := benchPlugin(b, svc)
			b.ReportAllocs()
			start := testutil.CPUTime()
			for b.Loop() {
				if _, err := p.GetService(svc.Name); err != nil {
					b.Fatal(err)
				}
			}
			testutil.ReportCPU(b, start)
		})
		b.Run("gomicro-cache/"+shape, func(b *testing.B) {
			_, c := benchPlugin(b, svc)
			b.ReportAllocs()
			start := testutil.CPUTime()
			for b.Loop() {
				if _, err := c.GetService(svc.Name); err != nil {
					b.Fatal(err)
				}
			}
			testutil.ReportCPU(b, start)
		})
	}
}
