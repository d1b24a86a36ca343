package microetcd

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	microetcd "github.com/go-micro/plugins/v4/registry/etcd"
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/microplugin"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func unique(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// A service as go-micro's server registers it.
func service(name, id, addr string) *mreg.Service {
	return &mreg.Service{
		Name:     name,
		Version:  "latest",
		Metadata: map[string]string{"team": "a"},
		Endpoints: []*mreg.Endpoint{{
			Name:     "Greeter.Hello",
			Request:  &mreg.Value{Name: "Request", Type: "Request", Values: []*mreg.Value{{Name: "name", Type: "string"}}},
			Response: &mreg.Value{Name: "Response", Type: "Response"},
			Metadata: map[string]string{"stream": "false"},
		}},
		Nodes: []*mreg.Node{{Id: id, Address: addr, Metadata: map[string]string{
			"broker": "http", "protocol": "mucp", "registry": "etcd", "server": "mucp", "transport": "http",
		}}},
	}
}

// pluginRegistry is the go-micro etcd plugin v1.2.0 on the test server.
func pluginRegistry(t *testing.T, endpoint string) mreg.Registry {
	return microetcd.NewRegistry(mreg.Addrs(endpoint), mreg.Timeout(2*time.Second))
}

// regchainRegistry is a node moved to regchain: the etcd adapter in the
// go-micro layout, served to go-micro by microplugin.
func regchainRegistry(t *testing.T, endpoint string) mreg.Registry {
	r, err := etcd.New(etcd.Config{
		Endpoints: []string{endpoint}, Codec: microplugin.EtcdCodec{},
		TTL: 5 * time.Second, Timeout: 2 * time.Second, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return microplugin.New(r)
}

// nodesOf returns the node IDs of the service's versions, sorted.
func nodesOf(t *testing.T, r mreg.Registry, name string) ([]string, []*mreg.Service) {
	svcs, err := r.GetService(name)
	if err != nil {
		return nil, nil
	}
	var ids []string
	for _, s := range svcs {
		for _, n := range s.Nodes {
			ids = append(ids, n.Id)
		}
	}
	slices.Sort(ids)
	return ids, svcs
}

func waitNodes(t *testing.T, r mreg.Registry, who, name string, want ...string) []*mreg.Service {
	t.Helper()
	var svcs []*mreg.Service
	testutil.WaitFor(t, 10*time.Second, who+" sees "+name+" nodes", func() string {
		var ids []string
		ids, svcs = nodesOf(t, r, name)
		if !slices.Equal(ids, want) {
			return "nodes " + joinIDs(ids)
		}
		return ""
	})
	return svcs
}

func joinIDs(ids []string) string {
	if len(ids) == 0 {
		return "(none)"
	}
	s := ids[0]
	for _, id := range ids[1:] {
		s += "," + id
	}
	return s
}

// checkService checks that a node read back carries everything go-micro
// registered: service metadata, endpoint descriptors, node address and
// metadata.
func checkService(t *testing.T, who string, got []*mreg.Service, want *mreg.Service) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("%s: %d versions, want 1", who, len(got))
	}
	g := got[0]
	if g.Name != want.Name || g.Version != want.Version || g.Metadata["team"] != "a" {
		t.Errorf("%s: service %s %s metadata %v", who, g.Name, g.Version, g.Metadata)
	}
	if len(g.Endpoints) != 1 || g.Endpoints[0].Name != "Greeter.Hello" || g.Endpoints[0].Request == nil ||
		len(g.Endpoints[0].Request.Values) != 1 || g.Endpoints[0].Metadata["stream"] != "false" {
		t.Errorf("%s: endpoints %+v", who, g.Endpoints)
	}
	wn := want.Nodes[0]
	for _, n := range g.Nodes {
		if n.Id == wn.Id {
			if n.Address != wn.Address || n.Metadata["transport"] != "http" || n.Metadata["protocol"] != "mucp" {
				t.Errorf("%s: node %+v, want %+v", who, n, wn)
			}
			return
		}
	}
	t.Errorf("%s: node %s missing", who, wn.Id)
}

func TestPluginAndRegchainSeeEachOther(t *testing.T) {
	srv := shared.Server(t)
	name := unique("greeter")
	plugin := pluginRegistry(t, srv.Endpoint())
	moved := regchainRegistry(t, srv.Endpoint())

	old := service(name, name+"-old", "10.0.0.1:8080")
	if err := plugin.Register(old, mreg.RegisterTTL(10*time.Second)); err != nil {
		t.Fatalf("plugin Register: %v", err)
	}
	fresh := service(name, name+"-new", "10.0.0.2:8080")
	if err := moved.Register(fresh); err != nil {
		t.Fatalf("regchain Register: %v", err)
	}

	both := []string{name + "-new", name + "-old"}
	checkService(t, "regchain reading the plugin's node", waitNodes(t, moved, "regchain", name, both...), old)
	checkService(t, "the plugin reading regchain's node", waitNodes(t, plugin, "plugin", name, both...), fresh)

	// ListServices both ways.
	for who, r := range map[string]mreg.Registry{"plugin": plugin, "regchain": moved} {
		list, err := r.ListServices()
		if err != nil {
			t.Fatalf("%s ListServices: %v", who, err)
		}
		if !slices.ContainsFunc(list, func(s *mreg.Service) bool { return s.Name == name }) {
			t.Errorf("%s ListServices misses %s", who, name)
		}
	}

	// Deregistration both ways.
	if err := plugin.Deregister(old); err != nil {
		t.Fatal(err)
	}
	waitNodes(t, moved, "regchain", name, name+"-new")
	if err := moved.Deregister(&mreg.Service{Name: name, Nodes: []*mreg.Node{{Id: name + "-new", Address: "10.0.0.2:8080"}}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "plugin sees the service gone", testutil.Until(func() bool {
		_, err := plugin.GetService(name)
		return err == mreg.ErrNotFound
	}))
}

// Watches in both directions: each side's watcher sees the other side's
// registrations and removals.
func TestWatchBothWays(t *testing.T) {
	srv := shared.Server(t)
	name := unique("watched")
	plugin := pluginRegistry(t, srv.Endpoint())
	moved := regchainRegistry(t, srv.Endpoint())

	pw, err := plugin.Watch(mreg.WatchService(name))
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Stop()
	rw, err := moved.Watch(mreg.WatchService(name))
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Stop()

	if err := moved.Register(service(name, name+"-r", "10.0.0.3:1")); err != nil {
		t.Fatal(err)
	}
	res := next(t, pw)
	if res.Action != "create" || len(res.Service.Nodes) != 1 || res.Service.Nodes[0].Id != name+"-r" {
		t.Errorf("plugin watcher: %s %+v, want create of %s-r", res.Action, res.Service, name)
	}
	if err := plugin.Register(service(name, name+"-p", "10.0.0.4:1"), mreg.RegisterTTL(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "regchain watcher sees the plugin's node", func() string {
		r := next(t, rw)
		for _, n := range r.Service.Nodes {
			if n.Id == name+"-p" && r.Action != "delete" {
				return ""
			}
		}
		return "result " + r.Action + " without the node"
	})
}

func next(t *testing.T, w mreg.Watcher) *mreg.Result {
	t.Helper()
	type res struct {
		r   *mreg.Result
		err error
	}
	ch := make(chan res, 1)
	go func() {
		r, err := w.Next()
		ch <- res{r, err}
	}()
	select {
	case got := <-ch:
		if got.err != nil {
			t.Fatalf("Next: %v", got.err)
		}
		return got.r
	case <-time.After(10 * time.Second):
		t.Fatal("no watch result within 10s")
	}
	return nil
}
