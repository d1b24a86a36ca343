package kratosplugin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"testing"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	"go-micro.dev/v4/registry/cache"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testutil"
	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// readInstances returns n instances of "svc" with metadata and two
// endpoints, the shape of the read benchmarks.
func readInstances(n int) []*registry.Instance {
	out := make([]*registry.Instance, n)
	for i := range out {
		out[i] = &registry.Instance{
			ID: fmt.Sprintf("svc-%02d", i), Name: "svc", Version: "v1",
			Metadata: map[string]string{"weight": "10", "zone": "z1", "region": "eu"},
			Endpoints: []string{
				fmt.Sprintf("http://10.0.0.%d:8000", i+1),
				fmt.Sprintf("grpc://10.0.0.%d:9000?isSecure=false", i+1),
			},
		}
	}
	return out
}

// newReadChain returns a chain over one Memory tier holding ins.
func newReadChain(tb testing.TB, ins []*registry.Instance) *chain.Chain {
	tb.Helper()
	mem := registrytest.NewMemoryNamed("m")
	for _, in := range ins {
		if err := mem.Register(context.Background(), in); err != nil {
			tb.Fatal(err)
		}
	}
	c, err := chain.New([]chain.Tier{{Name: "m", Registry: mem}},
		chain.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), chain.WithOwnTiers(true))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func idList(list []*kratosregistry.ServiceInstance) []string {
	var out []string
	for _, si := range list {
		out = append(out, si.ID)
	}
	return out
}

// Over a chain, GetService follows every state change.
func TestGetServiceSharedFollowsStates(t *testing.T) {
	ctx := context.Background()
	ins := readInstances(3)
	c := newReadChain(t, ins)
	r := kratosplugin.New(c)
	wait := func(what string, want []string) {
		t.Helper()
		testutil.WaitFor(t, waitTimeout, what, func() string {
			list, err := r.GetService(ctx, "svc")
			if got := idList(list); err != nil || !slices.Equal(got, want) {
				return fmt.Sprintf("GetService = %v, %v", got, err)
			}
			return ""
		})
	}
	wait("three instances", []string{"svc-00", "svc-01", "svc-02"})
	list, _ := r.GetService(ctx, "svc")
	for i, si := range list {
		if !kratosplugin.ToInstance(si).Equal(ins[i]) {
			t.Fatalf("GetService[%d] = %+v, want %+v", i, si, ins[i])
		}
	}
	if err := c.Deregister(ctx, ins[1]); err != nil {
		t.Fatal(err)
	}
	wait("one removed", []string{"svc-00", "svc-02"})
	for _, in := range []*registry.Instance{ins[0], ins[2]} {
		if err := c.Deregister(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	wait("none left", nil)
	if err := c.Register(ctx, ins[1]); err != nil {
		t.Fatal(err)
	}
	wait("one back", []string{"svc-01"})
}

// Each read's ServiceInstances and Endpoints are its own: Kratos' Equal
// sorts endpoint slices in place, and an append must not reach another
// instance's endpoints.
func TestGetServiceSharedFreshCopies(t *testing.T) {
	ctx := context.Background()
	c := newReadChain(t, readInstances(3))
	r := kratosplugin.New(c)
	testutil.WaitFor(t, waitTimeout, "three instances", func() string {
		list, err := r.GetService(ctx, "svc")
		if err != nil || len(list) != 3 {
			return fmt.Sprintf("GetService = %v, %v", idList(list), err)
		}
		return ""
	})
	a, err := r.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two reads of one state differ:\n%+v\n%+v", a, b)
	}
	before, err := r.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] == b[i] || &a[i].Endpoints[0] == &b[i].Endpoints[0] {
			t.Fatalf("[%d]: two reads share an instance or its endpoints", i)
		}
		if cap(a[i].Endpoints) != len(a[i].Endpoints) {
			t.Fatalf("[%d]: endpoints have room to grow into a neighbour's", i)
		}
		if !a[i].Equal(b[i]) { // sorts both in place
			t.Fatalf("[%d]: Equal = false for two reads of one state", i)
		}
		a[i].Endpoints = append(a[i].Endpoints, "http://appended:1")
		a[i].ID = "changed"
	}
	if !sort.StringsAreSorted(a[0].Endpoints[:2]) {
		t.Fatal("Equal did not sort: the test no longer checks what it means to")
	}
	after, err := r.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("changing earlier reads changed a later one:\n%+v\n%+v", before, after)
	}
	if !reflect.DeepEqual(b[1].Endpoints, []string{"grpc://10.0.0.2:9000?isSecure=false", "http://10.0.0.2:8000"}) {
		t.Fatalf("a neighbour's endpoints changed: %q", b[1].Endpoints)
	}
}

// Over a registry without SharedReader, GetService converts the fresh
// copies the registry returns.
func TestGetServiceUnshared(t *testing.T) {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	t.Cleanup(func() { mem.Close() })
	ins := readInstances(2)
	for _, in := range ins {
		if err := mem.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	r := kratosplugin.New(mem)
	a, err := r.GetService(ctx, "svc")
	if err != nil || len(a) != 2 {
		t.Fatalf("GetService = %v, %v", idList(a), err)
	}
	a[0].Metadata["written"] = "x"
	b, err := r.GetService(ctx, "svc")
	if err != nil || len(b) != 2 || !kratosplugin.ToInstance(b[0]).Equal(ins[0]) {
		t.Fatalf("GetService after writing an earlier result = %+v, %v", b, err)
	}
}

// BenchmarkGetService reads one service of 10 instances (three metadata
// keys, two endpoints each) through the plugin over a chain, and through
// go-micro's registry/cache over microplugin over the same chain, in the
// same run; the chain's own reads for reference.
func BenchmarkGetService(b *testing.B) {
	ctx := context.Background()
	ins := readInstances(10)
	warm := func(b *testing.B, read func() (int, error)) {
		testutil.WaitFor(b, waitTimeout, "ten instances", func() string {
			if n, err := read(); err != nil || n != 10 {
				return fmt.Sprintf("read %d, %v", n, err)
			}
			return ""
		})
		b.ReportAllocs()
	}
	b.Run("kratosplugin", func(b *testing.B) {
		r := kratosplugin.New(newReadChain(b, ins))
		warm(b, func() (int, error) { l, err := r.GetService(ctx, "svc"); return len(l), err })
		start := testutil.CPUTime()
		for b.Loop() {
			if _, err := r.GetService(ctx, "svc"); err != nil {
				b.Fatal(err)
			}
		}
		testutil.ReportCPU(b, start)
	})
	b.Run("gomicro-cache", func(b *testing.B) {
		mc := cache.New(microplugin.New(newReadChain(b, ins)))
		b.Cleanup(mc.Stop)
		warm(b, func() (int, error) {
			svcs, err := mc.GetService("svc")
			n := 0
			for _, s := range svcs {
				n += len(s.Nodes)
			}
			return n, err
		})
		start := testutil.CPUTime()
		for b.Loop() {
			if _, err := mc.GetService("svc"); err != nil {
				b.Fatal(err)
			}
		}
		testutil.ReportCPU(b, start)
	})
	b.Run("chain-GetService", func(b *testing.B) {
		c := newReadChain(b, ins)
		warm(b, func() (int, error) { l, err := c.GetService(ctx, "svc"); return len(l), err })
		start := testutil.CPUTime()
		for b.Loop() {
			if _, err := c.GetService(ctx, "svc"); err != nil {
				b.Fatal(err)
			}
		}
		testutil.ReportCPU(b, start)
	})
}
