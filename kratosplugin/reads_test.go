package kratosplugin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"
	"go-micro.dev/v4/registry/cache"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/locality"
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

// Over a chain, a read's slice is its own, and its ServiceInstances are
// shared with every other read of the state, their endpoints sorted (one
// per scheme: the order means nothing to Kratos), so that Kratos' Equal,
// which sorts endpoint slices in place, writes nothing: -race checks it.
func TestGetServiceSharedInstances(t *testing.T) {
	ctx := context.Background()
	ins := readInstances(3) // endpoints http then grpc: unsorted
	c := newReadChain(t, ins)
	r := kratosplugin.New(c)
	waitIDs(t, r, "svc", []string{"svc-00", "svc-01", "svc-02"})
	a, err := r.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("[%d]: two reads of one state hold different instances", i)
		}
		want := slices.Sorted(slices.Values(ins[i].Endpoints))
		if !slices.Equal(a[i].Endpoints, want) {
			t.Fatalf("[%d]: endpoints %q, want %q", i, a[i].Endpoints, want)
		}
		if a[i].ID != ins[i].ID || a[i].Version != ins[i].Version || !reflect.DeepEqual(a[i].Metadata, ins[i].Metadata) {
			t.Fatalf("[%d] = %+v, want %+v", i, a[i], ins[i])
		}
	}
	// Equal from many goroutines at once, on instances every read shares.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			l, err := r.GetService(ctx, "svc")
			if err != nil {
				t.Error(err)
				return
			}
			for i := range l {
				if !l[i].Equal(a[i]) || l[i].Equal(a[(i+1)%len(a)]) {
					t.Errorf("[%d]: Equal wrong on shared instances", i)
				}
			}
		})
	}
	wg.Wait()
	// The slice is the caller's: reordering it changes no other read.
	slices.Reverse(a)
	if c, _ := r.GetService(ctx, "svc"); !slices.Equal(idList(c), []string{"svc-00", "svc-01", "svc-02"}) {
		t.Fatalf("reordering a read reordered the next: %v", idList(c))
	}
}

// An instance whose endpoint order matters to Kratos (two of one scheme:
// Kratos takes the first) or cannot be shared (more than 12, which
// sort.Strings does not sort by insertion) is copied for each read, in the
// registrant's order; the other instances of the state are still shared.
func TestGetServicePrivateInstances(t *testing.T) {
	ctx := context.Background()
	long := make([]string, 13)
	for i := range long {
		long[i] = fmt.Sprintf("http://10.0.1.%d:80", 13-i)
	}
	ins := []*registry.Instance{
		{ID: "two-grpc", Name: "svc", Endpoints: []string{"grpc://10.0.0.2:9000", "grpc://10.0.0.1:9000"}},
		{ID: "plain", Name: "svc", Endpoints: []string{"http://10.0.0.3:80", "grpc://10.0.0.3:90"}},
		{ID: "long", Name: "svc", Endpoints: long},
		{ID: "one", Name: "svc", Endpoints: []string{"http://10.0.0.4:80"}},
	}
	r := kratosplugin.New(newReadChain(t, ins))
	waitIDs(t, r, "svc", []string{"long", "one", "plain", "two-grpc"})
	byID := func(l []*kratosregistry.ServiceInstance, id string) *kratosregistry.ServiceInstance {
		for _, si := range l {
			if si.ID == id {
				return si
			}
		}
		t.Fatalf("no %s in %v", id, idList(l))
		return nil
	}
	a, _ := r.GetService(ctx, "svc")
	b, _ := r.GetService(ctx, "svc")
	for _, id := range []string{"two-grpc", "long"} {
		x, y := byID(a, id), byID(b, id)
		want := ins[slices.IndexFunc(ins, func(in *registry.Instance) bool { return in.ID == id })].Endpoints
		if x == y || &x.Endpoints[0] == &y.Endpoints[0] {
			t.Fatalf("%s: two reads share it", id)
		}
		if !slices.Equal(x.Endpoints, want) {
			t.Fatalf("%s: endpoints %q, want the registrant's order %q", id, x.Endpoints, want)
		}
		if cap(x.Endpoints) != len(x.Endpoints) {
			t.Fatalf("%s: endpoints have room to grow into a neighbour's", id)
		}
		if !x.Equal(y) { // sorts both in place
			t.Fatalf("%s: Equal = false for two reads of one state", id)
		}
		x.Endpoints = append(x.Endpoints, "http://appended:1")
	}
	if byID(a, "plain") != byID(b, "plain") || byID(a, "one") != byID(b, "one") {
		t.Fatal("the shareable instances of a state with private ones are not shared")
	}
	c, _ := r.GetService(ctx, "svc")
	if got := byID(c, "two-grpc").Endpoints; !slices.Equal(got, ins[0].Endpoints) {
		t.Fatalf("sorting an earlier read reached a later one: %q", got)
	}
	if got := byID(c, "long").Endpoints; !slices.Equal(got, long) {
		t.Fatalf("sorting an earlier read reached a later one: %q", got)
	}
}

// waitIDs waits until r's GetService of name gives the instances want.
func waitIDs(t *testing.T, r *kratosplugin.Registry, name string, want []string) {
	t.Helper()
	testutil.WaitFor(t, waitTimeout, fmt.Sprint(want), func() string {
		list, err := r.GetService(context.Background(), name)
		got := idList(list)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			return fmt.Sprintf("GetService = %v, %v", got, err)
		}
		return ""
	})
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
// keys, two endpoints each) through the plugin over a chain (and over
// locality.Wrap of the chain), and through
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
	// The same read through locality.Wrap over the chain (the reader's
	// zone holds every instance).
	b.Run("kratosplugin-locality", func(b *testing.B) {
		w := locality.Wrap(newReadChain(b, ins), locality.Config{Self: locality.Locality{Zone: "z1", Region: "eu"}})
		b.Cleanup(func() { w.Close() })
		r := kratosplugin.New(w)
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
