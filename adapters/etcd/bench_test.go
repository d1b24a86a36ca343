package etcd

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

func benchConfig(b *testing.B, endpoint string) Config {
	cfg := testConfig(b, endpoint)
	cfg.TTL = 15 * time.Second
	cfg.Timeout = 5 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

func BenchmarkRegister(b *testing.B) {
	srv := shared.Server(b)
	r := newRegistry(b, benchConfig(b, srv.Endpoint()))
	ctx := ctxT(b, 10*time.Minute)
	ins := make([]*registry.Instance, b.N)
	for i := range ins {
		ins[i] = instance("bench-register", "i"+strconv.Itoa(i), 10000+i%50000)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.Register(ctx, ins[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, in := range ins {
		if err := r.Deregister(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetService(b *testing.B) {
	srv := shared.Server(b)
	r := newRegistry(b, benchConfig(b, srv.Endpoint()))
	ctx := ctxT(b, 10*time.Minute)
	const n = 10
	for i := range n {
		if err := r.Register(ctx, instance("bench-get", "i"+strconv.Itoa(i), 10000+i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := r.GetService(ctx, "bench-get")
		if err != nil || len(got) != n {
			b.Fatalf("GetService = %d instances, %v", len(got), err)
		}
	}
}

// BenchmarkWatchPropagation measures how long a Put takes to come out of
// our Watcher.Next, next to how long it takes to come out of a raw clientv3
// watch channel on the same client, interleaving the two so they share the
// machine's noise. It reports p50 and p99 of both and their ratios.
func BenchmarkWatchPropagation(b *testing.B) {
	srv := shared.Server(b)
	writer := newClient(b, srv.Endpoint())
	watchCli := newClient(b, srv.Endpoint())
	cfg := benchConfig(b, "")
	cfg.Endpoints = nil
	cfg.Client = watchCli
	r := newRegistry(b, cfg)
	ctx := ctxT(b, 10*time.Minute)

	const svc = "bench-watch"
	w, err := r.Watch(ctx, svc)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	if _, err := w.Next(); err != nil { // the initial, empty state
		b.Fatal(err)
	}
	rawPrefix := cfg.Namespace + "/bench-raw/"
	raw := watchCli.Watch(ctx, rawPrefix, clientv3.WithPrefix())
	ourKey, rawKey := r.rec.key(svc, "a"), rawPrefix+"a"

	values := func(i int) (string, string) {
		in := instance(svc, "a", 9000)
		in.Metadata["seq"] = strconv.Itoa(i)
		v, err := registry.Marshal(in)
		if err != nil {
			b.Fatal(err)
		}
		return string(v), string(v)
	}
	ours := func(i int, val string) time.Duration {
		start := time.Now()
		if _, err := writer.Put(ctx, ourKey, val); err != nil {
			b.Fatal(err)
		}
		for {
			u, err := w.Next()
			if err != nil {
				b.Fatalf("Next: %v", err)
			}
			if len(u.Instances) == 1 && u.Instances[0].Metadata["seq"] == strconv.Itoa(i) {
				return time.Since(start)
			}
		}
	}
	rawOne := func(val string) time.Duration {
		start := time.Now()
		if _, err := writer.Put(ctx, rawKey, val); err != nil {
			b.Fatal(err)
		}
		resp, ok := <-raw
		if !ok || resp.Err() != nil || len(resp.Events) == 0 {
			b.Fatalf("raw watch: %v %v", ok, resp.Err())
		}
		return time.Since(start)
	}
	// Warm up both paths (connections, streams, allocations).
	for i := -50; i < 0; i++ {
		o, rv := values(i)
		ours(i, o)
		rawOne(rv)
	}

	ourLat := make([]time.Duration, 0, b.N)
	rawLat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o, rv := values(i)
		if i%2 == 0 {
			ourLat = append(ourLat, ours(i, o))
			rawLat = append(rawLat, rawOne(rv))
		} else {
			rawLat = append(rawLat, rawOne(rv))
			ourLat = append(ourLat, ours(i, o))
		}
	}
	b.StopTimer()
	op50, op99 := percentiles(ourLat)
	rp50, rp99 := percentiles(rawLat)
	b.ReportMetric(float64(op50.Nanoseconds()), "ours-p50-ns")
	b.ReportMetric(float64(op99.Nanoseconds()), "ours-p99-ns")
	b.ReportMetric(float64(rp50.Nanoseconds()), "raw-p50-ns")
	b.ReportMetric(float64(rp99.Nanoseconds()), "raw-p99-ns")
	b.ReportMetric(float64(op50)/float64(rp50), "p50-ratio")
	b.ReportMetric(float64(op99)/float64(rp99), "p99-ratio")
}

// percentiles returns the 50th and 99th percentiles (nearest rank).
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return at(0.50), at(0.99)
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p50, p99 := percentiles(d); p50 != 50 || p99 != 99 {
		t.Errorf("percentiles(1..100) = %v, %v; want 50, 99", p50, p99)
	}
	if p50, p99 := percentiles([]time.Duration{7}); p50 != 7 || p99 != 7 {
		t.Errorf("percentiles([7]) = %v, %v", p50, p99)
	}
	if got := fmt.Sprint(percentiles(nil)); got != "0s 0s" {
		t.Errorf("percentiles(nil) = %s", got)
	}
}

// BenchmarkPing (issue 12): Ping's cost, passive (the default) and active,
// with an empty namespace and with 20,000 records in it, next to the count
// over the namespace Ping used to do. Ping's must not grow with the data.
func BenchmarkPing(b *testing.B) {
	srv := shared.Server(b)
	cli := newClient(b, srv.Endpoint())
	for _, n := range []int{0, 20000} {
		cfg := benchConfig(b, srv.Endpoint())
		if n > 0 {
			ctx := ctxT(b, 5*time.Minute)
			for i := 0; i < n; i += 100 {
				var ops []clientv3.Op
				for j := i; j < min(i+100, n); j++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/big/i%05d", cfg.Namespace, j), `{"id":"x"}`))
				}
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					b.Fatal(err)
				}
			}
		}
		ctx := ctxT(b, 10*time.Minute)
		// passive: the default, answered from the client's own recent
		// traffic while its connection is ready; active: PassivePing < 0,
		// every Ping sends its one-key count.
		for _, mode := range []struct {
			name    string
			passive time.Duration
		}{{"passive", 0}, {"active", -1}} {
			cfg := cfg
			cfg.PassivePing = mode.passive
			r := newRegistry(b, cfg)
			b.Run(fmt.Sprintf("records=%d/Ping-%s", n, mode.name), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := r.Ping(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(fmt.Sprintf("records=%d/count-namespace", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := cli.Get(ctx, cfg.Namespace+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
