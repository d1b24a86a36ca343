package chain_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"

	mregistry "go-micro.dev/v4/registry"

	mcache "go-micro.dev/v4/registry/cache"

	"github.com/regchain/regchain/registry"
)

// BenchmarkReadVsMicroCache compares, in one run, the chain's reads of a
// watched service of 10 instances (two metadata keys, two endpoints each)
// with go-micro's registry/cache over its memory registry holding the same
// 10 nodes (two metadata keys each): the read a go-micro user has today.
func BenchmarkReadVsMicroCache(b *testing.B) {
	ctx := context.Background()
	b.Run("chain/GetService", func(b *testing.B) {
		c := benchChain(b, 10)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.GetService(ctx, "svc"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("chain/GetServiceShared", func(b *testing.B) {
		c := benchChain(b, 10)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.GetServiceShared(ctx, "svc"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("chain/Lookup", func(b *testing.B) {
		c := benchChain(b, 10)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Lookup(ctx, "svc"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The floor of a deep copy under the registry contract: only the ten
	// fresh Metadata maps (maps.Clone, the runtime's cheapest copy of a
	// map: one header and one group each), nothing else.
	b.Run("floor/10-metadata-maps", func(b *testing.B) {
		c := benchChain(b, 10)
		v, err := c.Lookup(ctx, "svc")
		if err != nil {
			b.Fatal(err)
		}
		out := make([]map[string]string, v.Len())
		b.ReportAllocs()
		for b.Loop() {
			for i := range out {
				out[i] = maps.Clone(v.At(i).Metadata)
			}
		}
	})
	// The floor of GetServiceShared: its one allocation, the 80 B pointer
	// slice, and the copy into it, with no lookup.
	b.Run("floor/slice-copy", func(b *testing.B) {
		c := benchChain(b, 10)
		v, err := c.Lookup(ctx, "svc")
		if err != nil {
			b.Fatal(err)
		}
		ins := v.Instances()
		b.ReportAllocs()
		for b.Loop() {
			out := make([]*registry.Instance, len(ins))
			copy(out, ins)
			sinkInstances = out
		}
	})
	b.Run("go-micro/cache.GetService", func(b *testing.B) {
		svc := &mregistry.Service{Name: "svc", Version: "v1"}
		for i := range 10 {
			svc.Nodes = append(svc.Nodes, &mregistry.Node{
				Id:       fmt.Sprintf("i%05d", i),
				Address:  fmt.Sprintf("10.0.0.%d:9000", i),
				Metadata: map[string]string{"zone": "z1", "weight": "10"},
			})
		}
		c := mcache.New(&staticMicro{svc: svc})
		b.Cleanup(c.Stop)
		if got, err := c.GetService("svc"); err != nil || len(got) != 1 || len(got[0].Nodes) != 10 {
			b.Fatalf("GetService = %v, %v", got, err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.GetService("svc"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var sinkInstances []*registry.Instance

// staticMicro is a go-micro registry holding one service, whose watchers
// block until stopped: the cache serves every read after the first from
// its own copy. (go-micro's memory registry starts a goroutine it never
// stops.)
type staticMicro struct{ svc *mregistry.Service }

func (s *staticMicro) Init(...mregistry.Option) error { return nil }
func (s *staticMicro) Options() mregistry.Options     { return mregistry.Options{} }
func (s *staticMicro) String() string                 { return "static" }
func (s *staticMicro) Register(*mregistry.Service, ...mregistry.RegisterOption) error {
	return nil
}
func (s *staticMicro) Deregister(*mregistry.Service, ...mregistry.DeregisterOption) error {
	return nil
}
func (s *staticMicro) ListServices(...mregistry.ListOption) ([]*mregistry.Service, error) {
	return []*mregistry.Service{s.svc}, nil
}
func (s *staticMicro) GetService(name string, _ ...mregistry.GetOption) ([]*mregistry.Service, error) {
	if name != s.svc.Name {
		return nil, mregistry.ErrNotFound
	}
	return []*mregistry.Service{s.svc}, nil
}
func (s *staticMicro) Watch(...mregistry.WatchOption) (mregistry.Watcher, error) {
	return &blockedWatcher{stop: make(chan struct{})}, nil
}

type blockedWatcher struct {
	once sync.Once
	stop chan struct{}
}

func (w *blockedWatcher) Next() (*mregistry.Result, error) {
	<-w.stop
	return nil, errors.New("watcher stopped")
}

func (w *blockedWatcher) Stop() { w.once.Do(func() { close(w.stop) }) }
