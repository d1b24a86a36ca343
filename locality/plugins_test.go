package locality_test

import (
	"context"
	"slices"
	"testing"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/registry/registrytest"
)

// Both plugins take the wrapped registry as it is: a Kratos app and a
// go-micro service registering with metadata zone/region (no code beyond
// their usual Metadata option) are read with locality preference.
func TestPluginsOverWrap(t *testing.T) {
	t.Setenv(locality.EnvZone, "")
	t.Setenv(locality.EnvRegion, "")
	ctx := context.Background()
	mem := registrytest.NewMemory()
	defer mem.Close()
	self := locality.Config{Self: locality.Locality{Zone: "a", Region: "r1"}}

	kr := kratosplugin.New(locality.Wrap(mem, self))
	for _, si := range []*kratosregistry.ServiceInstance{
		{ID: "k-a", Name: "kapp", Endpoints: []string{"grpc://127.0.0.1:1"}, Metadata: map[string]string{"zone": "a", "region": "r1"}},
		{ID: "k-b", Name: "kapp", Endpoints: []string{"grpc://127.0.0.1:2"}, Metadata: map[string]string{"zone": "b", "region": "r1"}},
	} {
		if err := kr.Register(ctx, si); err != nil {
			t.Fatal(err)
		}
	}
	got, err := kr.GetService(ctx, "kapp")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "k-a" {
		t.Errorf("kratos GetService = %v, want only k-a (zone a)", got)
	}
	kw, err := kr.Watch(ctx, "kapp")
	if err != nil {
		t.Fatal(err)
	}
	defer kw.Stop()
	if ins, err := kw.Next(); err != nil || len(ins) != 1 || ins[0].ID != "k-a" {
		t.Errorf("kratos watch = %v, %v; want only k-a", ins, err)
	}

	mr := microplugin.New(locality.Wrap(mem, self))
	for _, n := range []*mreg.Node{
		{Id: "m-a", Address: "127.0.0.1:3", Metadata: map[string]string{"zone": "a", "region": "r1"}},
		{Id: "m-c", Address: "127.0.0.1:4", Metadata: map[string]string{"zone": "c", "region": "r2"}},
	} {
		if err := mr.Register(&mreg.Service{Name: "mapp", Version: "v1", Nodes: []*mreg.Node{n}}); err != nil {
			t.Fatal(err)
		}
	}
	svcs, err := mr.GetService("mapp")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, s := range svcs {
		for _, n := range s.Nodes {
			nodes = append(nodes, n.Id)
		}
	}
	if !slices.Equal(nodes, []string{"m-a"}) {
		t.Errorf("go-micro GetService nodes = %v, want [m-a]", nodes)
	}
}
