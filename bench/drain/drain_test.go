package drain

import (
	"context"
	"errors"
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
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/zktest"
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
// backend, beside two instances another process keeps registered, waits
// until two clients show it — a watch of the backend through its own
// connection (raw) and a watch through a client's own chain over the
// backend (chain) — then drains and times how long until each no longer
// shows it (gone) and until Drain returns (drain).
func benchDrain(b *testing.B, open func() registry.Registry) {
	provider, other, raw, clientReg := open(), open(), open(), open()
	b.Cleanup(func() {
		for _, r := range []registry.Registry{provider, other, raw, clientReg} {
			r.Close()
		}
	})
	c, err := chain.New([]chain.Tier{{Name: "backend", Registry: provider}}, chain.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	client, err := chain.New([]chain.Tier{{Name: "backend", Registry: clientReg}}, chain.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	const svc = "drain-bench"
	// Two instances stay: draining one of three is no drop the client
	// chain's guard would hold (see chain.Guard).
	for i := range 2 {
		keep := &registry.Instance{ID: fmt.Sprintf("keep-%d", i), Name: svc, Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", 9000+i)}}
		if err := other.Register(ctx, keep); err != nil {
			b.Fatal(err)
		}
	}
	rawUpdates, chainUpdates := follow(b, ctx, raw, svc), follow(b, ctx, client, svc)
	await := func(updates chan []string, what string, ok func([]string) bool) time.Time {
		timeout := time.After(waitTimeout)
		for {
			select {
			case ids := <-updates:
				if ok(ids) {
					return time.Now()
				}
			case <-timeout:
				b.Fatalf("no %s within %v", what, waitTimeout)
			}
		}
	}
	var rawGone, chainGone, drained []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := &registry.Instance{ID: fmt.Sprintf("i-%d", i), Name: svc, Version: "v1", Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", 10000+i)}}
		if err := c.Register(ctx, in); err != nil {
			b.Fatal(err)
		}
		shown := func(ids []string) bool { return slices.Contains(ids, in.ID) && len(ids) == 3 }
		await(rawUpdates, "registration (raw)", shown)
		await(chainUpdates, "registration (chain)", shown)
		start := time.Now()
		errc := make(chan error, 1)
		var drainedAt time.Time
		go func() {
			err := c.Drain(ctx)
			drainedAt = time.Now()
			errc <- err
		}()
		gone := func(ids []string) bool { return !slices.Contains(ids, in.ID) }
		var rawAt, chainAt time.Time
		both := make(chan struct{})
		go func() {
			defer close(both)
			chainAt = await(chainUpdates, "removal (chain)", gone)
		}()
		rawAt = await(rawUpdates, "removal (raw)", gone)
		<-both
		if err := <-errc; err != nil {
			b.Fatalf("Drain: %v", err)
		}
		rawGone = append(rawGone, rawAt.Sub(start))
		chainGone = append(chainGone, chainAt.Sub(start))
		drained = append(drained, drainedAt.Sub(start))
	}
	b.StopTimer()
	report := func(ds []time.Duration, name string) {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		slices.Sort(ds)
		b.ReportMetric(ms(ds[len(ds)/2]), name+"-p50-ms")
		b.ReportMetric(ms(ds[len(ds)*9/10]), name+"-p90-ms")
		b.ReportMetric(ms(ds[len(ds)-1]), name+"-max-ms")
	}
	report(rawGone, "gone-raw")
	report(chainGone, "gone-chain")
	report(drained, "drain")
}

// follow pumps the instance IDs of every state a watch of svc on r
// delivers into a channel, until the benchmark ends.
func follow(b *testing.B, ctx context.Context, r registry.Registry, svc string) chan []string {
	w, err := r.Watch(ctx, svc)
	if err != nil {
		b.Fatal(err)
	}
	updates := make(chan []string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			if ctx.Err() != nil || errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			ids := make([]string, len(u.Instances))
			for i, in := range u.Instances {
				ids[i] = in.ID
			}
			select {
			case updates <- ids:
			case <-ctx.Done():
				return
			}
		}
	}()
	b.Cleanup(func() {
		w.Stop()
		<-done
	})
	return updates
}
