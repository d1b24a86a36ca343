package drain

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/consultest"
	"github.com/regchain/regchain/internal/zktest"
	"github.com/regchain/regchain/registry"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// waitTimeout bounds each wait of one iteration.
const waitTimeout = 30 * time.Second

func BenchmarkDrain(b *testing.B) {
	b.Run("etcd", func(b *testing.B) {
		srv := etcdtest.Start(b)
		benchDrain(b, func() registry.Registry {
			r, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint()}, Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			return r
		})
	})
	b.Run("consul", func(b *testing.B) {
		a := consultest.Start(b, consultest.Options{})
		benchDrain(b, func() registry.Registry {
			r, err := consul.New(consul.Config{Address: a.Addr, Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			return r
		})
	})
	b.Run("zookeeper", func(b *testing.B) {
		srv := zktest.Start(b)
		benchDrain(b, func() registry.Registry {
			r, err := zk.New(zk.Config{Servers: []string{srv.Addr}, Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			return r
		})
	})
}

// benchDrain registers an instance through a chain over one tier of the
// backend, waits until a separate client's watch shows it, then drains
// and times how long until that watch no longer shows it (gone) and until
// Drain returns (drain).
func benchDrain(b *testing.B, open func() registry.Registry) {
	provider, watcher := open(), open()
	b.Cleanup(func() {
		provider.Close()
		watcher.Close()
	})
	c, err := chain.New([]chain.Tier{{Name: "backend", Registry: provider}}, chain.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	const svc = "drain-bench"
	w, err := watcher.Watch(ctx, svc)
	if err != nil {
		b.Fatal(err)
	}
	updates := make(chan []string, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				continue
			}
			ids := make([]string, len(u.Instances))
			for i, in := range u.Instances {
				ids[i] = in.ID
			}
			updates <- ids
		}
	}()
	b.Cleanup(func() {
		cancel()
		w.Stop()
		<-done
	})
	await := func(what string, ok func([]string) bool) {
		timeout := time.After(waitTimeout)
		for {
			select {
			case ids := <-updates:
				if ok(ids) {
					return
				}
			case <-timeout:
				b.Fatalf("no %s within %v", what, waitTimeout)
			}
		}
	}
	var gone, drained []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := &registry.Instance{ID: fmt.Sprintf("i-%d", i), Name: svc, Version: "v1", Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", 10000+i)}}
		if err := c.Register(ctx, in); err != nil {
			b.Fatal(err)
		}
		await("registration", func(ids []string) bool { return slices.Contains(ids, in.ID) })
		start := time.Now()
		errc := make(chan error, 1)
		var drainedAt time.Time
		go func() {
			err := c.Drain(ctx)
			drainedAt = time.Now()
			errc <- err
		}()
		await("removal", func(ids []string) bool { return !slices.Contains(ids, in.ID) })
		gone = append(gone, time.Since(start))
		if err := <-errc; err != nil {
			b.Fatalf("Drain: %v", err)
		}
		drained = append(drained, drainedAt.Sub(start))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	slices.Sort(gone)
	slices.Sort(drained)
	b.ReportMetric(ms(gone[len(gone)/2]), "gone-p50-ms")
	b.ReportMetric(ms(gone[len(gone)*9/10]), "gone-p90-ms")
	b.ReportMetric(ms(gone[len(gone)-1]), "gone-max-ms")
	b.ReportMetric(ms(drained[len(drained)/2]), "drain-p50-ms")
	b.ReportMetric(ms(drained[len(drained)-1]), "drain-max-ms")
}
