package chain_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// benchChain returns a chain over a Memory tier whose service "svc" has n
// instances (two metadata keys, two endpoints each) and is watched.
func benchChain(b *testing.B, n int) *chain.Chain {
	b.Helper()
	ctx := context.Background()
	m := registrytest.NewMemoryNamed("m")
	for i := range n {
		in := &registry.Instance{
			ID: fmt.Sprintf("i%05d", i), Name: "svc", Version: "v1",
			Metadata:  map[string]string{"zone": "z1", "weight": "10"},
			Endpoints: []string{fmt.Sprintf("grpc://10.0.%d.%d:9000", i/250, i%250), fmt.Sprintf("http://10.0.%d.%d:8000", i/250, i%250)},
		}
		if err := m.Register(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	c, err := chain.New([]chain.Tier{{Name: "m", Registry: m}}, chain.WithLogger(quietLogger()), chain.WithOwnTiers(true))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if got, err := c.GetService(ctx, "svc"); err != nil || len(got) != n {
		b.Fatalf("GetService = %d, %v", len(got), err)
	}
	return c
}

// benchReads runs read over a watched service of 10, 100 and 1000
// instances.
func benchReads(b *testing.B, read func(ctx context.Context, c *chain.Chain) error) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c := benchChain(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := read(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetService: a watched service read from memory, deep copies
// (the registry contract).
func BenchmarkGetService(b *testing.B) {
	benchReads(b, func(ctx context.Context, c *chain.Chain) error {
		_, err := c.GetService(ctx, "svc")
		return err
	})
}

// BenchmarkGetServiceShared: the same read without the deep copy.
func BenchmarkGetServiceShared(b *testing.B) {
	benchReads(b, func(ctx context.Context, c *chain.Chain) error {
		_, err := c.GetServiceShared(ctx, "svc")
		return err
	})
}

// BenchmarkGetServiceParallel: reads from every P at once.
func BenchmarkGetServiceParallel(b *testing.B) {
	c := benchChain(b, 10)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetServiceShared(ctx, "svc"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLookup: the zero-copy View, walked the way a load balancer
// would pick an instance.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c := benchChain(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v, err := c.Lookup(ctx, "svc")
				if err != nil {
					b.Fatal(err)
				}
				i++
				if v.At(i%v.Len()).ID == "" {
					b.Fatal("empty ID")
				}
			}
		})
	}
}
