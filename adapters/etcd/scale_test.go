package etcd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// etcdWatchers returns the number of watchers the in-process etcd servers
// hold (etcd's etcd_debugging_mvcc_watcher_total gauge).
func etcdWatchers(tb testing.TB) int {
	tb.Helper()
	return etcdGauge(tb, "etcd_debugging_mvcc_watcher_total")
}

// etcdGauge returns the value of one of the in-process etcd servers'
// gauges.
func etcdGauge(tb testing.TB, name string) int {
	tb.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	tb.Fatalf("no %s metric", name)
	return 0
}

// TestOneWatchStream: a registration's own-key watch and the namespace
// watch behind Watch share one gRPC stream to etcd (both are made
// WithRequireLeader, so clientv3 multiplexes them), so a process costs
// etcd one watch stream, not two.
func TestOneWatchStream(t *testing.T) {
	srv := shared.Server(t)
	cfg := testConfig(t, srv.Endpoint())
	cfg.Logger = quietLogger()
	s0, w0 := etcdGauge(t, "etcd_debugging_mvcc_watch_stream_total"), etcdWatchers(t)
	r := newRegistry(t, cfg)
	in := instance("one-stream", "a", 1)
	if err := r.Register(ctxT(t, time.Minute), in); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := r.Watch(ctx, in.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if u, err := w.Next(); err != nil || len(u.Instances) != 1 {
		t.Fatalf("first Next = %v, %v; want the instance", u, err)
	}
	testutil.WaitFor(t, 20*time.Second, "the own-key watch and the namespace watch", func() string {
		if n := etcdWatchers(t) - w0; n != 2 {
			return fmt.Sprintf("+%d etcd watchers, want +2", n)
		}
		return ""
	})
	if n := etcdGauge(t, "etcd_debugging_mvcc_watch_stream_total") - s0; n != 1 {
		t.Fatalf("+%d etcd watch streams for one registration and one watch; want +1", n)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// putMany writes one instance per service for n services in batched
// transactions.
func putMany(tb *testing.T, cli *clientv3.Client, ns string, n int, name func(i int) string) {
	tb.Helper()
	ctx := ctxT(tb, 5*time.Minute)
	const batch = 100 // below etcd's default of 128 operations per txn
	for i := 0; i < n; i += batch {
		var ops []clientv3.Op
		for j := i; j < min(i+batch, n); j++ {
			in := instance(name(j), fmt.Sprintf("i%d", j), 9000+j%1000)
			ops = append(ops, clientv3.OpPut(ns+"/"+in.Name+"/"+in.ID, mustMarshal(tb, in)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestWatchManyServices (issue 12): watching N services costs one etcd
// watch and O(1) goroutines per registry, not O(N). It logs goroutines,
// heap and etcd watchers for 1,000 and 10,000 watched services.
func TestWatchManyServices(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	for _, n := range []int{1000, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cfg := testConfig(t, srv.Endpoint())
			cfg.Logger = quietLogger()
			cfg.hubLinger = -1 // checked below: the shared watch ends with the last watcher
			// Listing 10,000 records under -race on a loaded machine takes
			// more than the tests' usual 1s.
			cfg.Timeout = DefaultTimeout
			name := func(i int) string { return fmt.Sprintf("svc-%05d", i) }
			putMany(t, cli, cfg.Namespace, n, name)
			r := newRegistry(t, cfg)
			// One registration, so its own-key watch is part of the count.
			if err := r.Register(ctxT(t, time.Minute), instance("self", "me", 1)); err != nil {
				t.Fatal(err)
			}
			g0, h0, w0 := runtime.NumGoroutine(), heapInUse(), etcdWatchers(t)
			start := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ws := make([]registry.Watcher, n)
			for i := range ws {
				w, err := r.Watch(ctx, name(i))
				if err != nil {
					t.Fatal(err)
				}
				ws[i] = w
			}
			for i, w := range ws {
				u, err := w.Next()
				for tries := 0; err != nil && !errors.Is(err, registry.ErrStopped) && tries < 5; tries++ {
					t.Logf("watcher %d: transient error %v", i, err) // the list is retried
					u, err = w.Next()
				}
				if err != nil || len(u.Instances) != 1 {
					t.Fatalf("watcher %d first Next = %v, %v; want its instance", i, u, err)
				}
			}
			ready := time.Since(start)
			g1, h1, w1 := runtime.NumGoroutine(), heapInUse(), etcdWatchers(t)
			t.Logf("MEASURE %d watched services: first states in %v; +%d goroutines, +%.1f MiB heap (%.0f B/service), +%d etcd watchers",
				n, ready.Round(time.Millisecond), g1-g0, float64(h1-h0)/(1<<20), float64(h1-h0)/float64(n), w1-w0)
			// The shared watch: its goroutine, its helper and clientv3's
			// watch stream goroutines, the same for any N.
			if d := g1 - g0; d > 40 {
				t.Errorf("%d watchers added %d goroutines; want O(1)", n, d)
			}
			if d := w1 - w0; d > 1 {
				t.Errorf("%d watchers added %d etcd watchers; want 1", n, d)
			}
			// A change reaches its watcher only.
			in := instance(name(n/2), "new", 1)
			if _, err := cli.Put(ctxT(t, time.Minute), r.rec.key(in.Name, in.ID), mustMarshal(t, in)); err != nil {
				t.Fatal(err)
			}
			u, err := ws[n/2].Next()
			if err != nil || len(u.Instances) != 2 {
				t.Fatalf("after a put: Next = %v, %v; want 2 instances", u, err)
			}
			for _, w := range ws {
				w.Stop()
			}
			testutil.WaitFor(t, 20*time.Second, "the shared watch ends with the last watcher", func() string {
				if w := etcdWatchers(t); w > w0 {
					return fmt.Sprintf("%d etcd watchers, want %d", w, w0)
				}
				return ""
			})
		})
	}
}

// TestWatchChurn starts and stops watchers concurrently while records
// change, so the shared watch starts, stops and restarts under load; every
// watcher's first state is the current one and nothing leaks (goleak).
func TestWatchChurn(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, srv.Endpoint())
	cfg.Logger = quietLogger()
	cfg.hubLinger = -1 // the shared watch stops with the last watcher, every time
	r := newRegistry(t, cfg)
	ctx := ctxT(t, time.Minute)
	stable := instance("churn-stable", "s", 1)
	if _, err := cli.Put(ctx, r.rec.key(stable.Name, stable.ID), mustMarshal(t, stable)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			in := instance("churn-busy", fmt.Sprint(i%5), i)
			cli.Put(ctx, r.rec.key(in.Name, in.ID), mustMarshal(t, in)) //nolint:errcheck // load only
		}
	}()
	defer func() { close(done); <-writerDone }()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				name := stable.Name
				if i%3 == 0 {
					name = ""
				}
				w, err := r.Watch(ctx, name)
				if err != nil {
					errs <- err
					return
				}
				for {
					u, err := w.Next()
					if err != nil {
						errs <- fmt.Errorf("watcher %d/%d: %w", g, i, err)
						w.Stop()
						return
					}
					if u.Service == stable.Name {
						if len(u.Instances) != 1 {
							errs <- fmt.Errorf("watcher %d/%d: %s has %d instances, want 1", g, i, u.Service, len(u.Instances))
						}
						break
					}
				}
				w.Stop()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWatchHoldsWatchedServicesOnly: the hub reads, decodes and keeps only
// the services watched since it started. A service watched later is read on
// its own (not by a list of the namespace), while writes to it go on, and
// its watcher ends at etcd's state; a watch-all makes the hub hold all.
func TestWatchHoldsWatchedServicesOnly(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, srv.Endpoint())
	cfg.Logger = quietLogger()
	r := newRegistry(t, cfg)
	ctx := ctxT(t, time.Minute)
	put := func(in *registry.Instance) {
		t.Helper()
		if _, err := cli.Put(ctx, r.rec.key(in.Name, in.ID), mustMarshal(t, in)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := instance("held-a", "1", 1), instance("held-b", "0", 2)
	put(a)
	put(b)
	wa := watchReader(t, r, a.Name)
	wa.Until(t, 10*time.Second, a.Name, a)
	r.hub.mu.Lock()
	listed := r.hub.listed
	r.hub.mu.Unlock()
	if listed != 1 {
		t.Fatalf("the first list read %d records; want 1 (the watched service's alone)", listed)
	}
	holds := func(name string) bool {
		r.hub.mu.Lock()
		defer r.hub.mu.Unlock()
		_, st := r.hub.st.state[name]
		return r.hub.st.holds(name) || st
	}
	if holds(b.Name) {
		t.Fatalf("the hub holds %s, which nobody watches", b.Name)
	}
	lists := r.hub.listCount()

	// Writes to b go on while its first watcher comes.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			in := instance(b.Name, fmt.Sprint(i%7), 3000+i)
			if i%3 == 2 {
				cli.Delete(ctx, r.rec.key(in.Name, in.ID)) //nolint:errcheck // load only
			} else {
				cli.Put(ctx, r.rec.key(in.Name, in.ID), mustMarshal(t, in)) //nolint:errcheck // load only
			}
		}
	}()
	wb := watchReader(t, r, b.Name)
	select {
	case res := <-wb.C:
		if res.Err != nil {
			t.Fatalf("first Next of %s: %v", b.Name, res.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no first state for %s", b.Name)
	}
	close(stop)
	<-done
	resp, err := cli.Get(ctx, r.rec.servicePrefix(b.Name), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var want []*registry.Instance
	for _, kv := range resp.Kvs {
		_, in, ok := r.rec.decode(kv)
		if !ok {
			t.Fatalf("bad record %s", kv.Key)
		}
		want = append(want, in)
	}
	wb.Until(t, 10*time.Second, b.Name, want...)
	if n := r.hub.listCount() - lists; n != 0 {
		t.Fatalf("the namespace was listed %d times for a new watcher; want 0 (its service read alone)", n)
	}

	// A watch-all needs every service: the hub lists them all.
	c := instance("held-c", "1", 3)
	put(c)
	all := watchReader(t, r, "")
	all.Until(t, 10*time.Second, c.Name, c)
	all.Until(t, 10*time.Second, a.Name, a)
	if !holds(c.Name) {
		t.Fatalf("with a watch-all, the hub does not hold %s", c.Name)
	}
}

// TestWatchAllListClearsPending: a service first watched while a watch-all's
// list runs is held once that list is done, and is not read again on its
// own. (Read again, its read's revision would be ignored, since every
// service is held, and events it already covers would be applied again
// over it: its watchers would see it go back in time.)
func TestWatchAllListClearsPending(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, srv.Endpoint())
	cfg.Logger = quietLogger()
	r := newRegistry(t, cfg)
	h := r.hub
	l := &lister{c: r.c, rec: r.rec, h: h}
	x := instance("pending-x", "k", 1)
	if _, err := cli.Put(ctxT(t, time.Minute), r.rec.key(x.Name, x.ID), mustMarshal(t, x)); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.st.wantAll = true
	h.st.pending[x.Name] = struct{}{} // watched during the list
	h.mu.Unlock()
	if _, err := l.relist(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	n, held := len(h.st.pending), h.st.holds(x.Name)
	h.mu.Unlock()
	if n != 0 || !held {
		t.Fatalf("after a watch-all's list: %d pending, %s held %v; want none pending, held", n, x.Name, held)
	}
	h.mu.Lock()
	h.st.pending[x.Name] = struct{}{} // as if signalled before the list took it
	h.mu.Unlock()
	if err := l.fetchPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	_, reread := h.st.since[x.Name]
	h.mu.Unlock()
	if reread {
		t.Fatalf("%s was read again on its own although the list holds it", x.Name)
	}
}
