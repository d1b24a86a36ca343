package zk_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/registry"
)

// BenchmarkWatchedServices watches 1,000 or 10,000 services (one instance
// each) through one Registry and reports what the watchers cost: the
// goroutines and heap they add to the process, and the watches the server
// holds for them (zktest's "wchs": one children watch per service and one
// data watch per instance, shared by every watcher of the Registry). Run
// with -benchtime=1x.
func BenchmarkWatchedServices(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				watchedServices(b, n)
			}
		})
	}
}

func watchedServices(b *testing.B, n int) {
	srv := zktest.Start(b) // its own server: the watch count is ours alone
	root := uniqueRoot(b)
	populate(b, srv, root, n)
	r := newRegistry(b, srv, zk.Config{Namespace: root})
	if err := r.Ping(ctxT(b, 30*time.Second)); err != nil {
		b.Fatal(err)
	}
	g0, h0 := goroutinesHeap()
	w0, err := srv.Watches()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	ws := make([]registry.Watcher, n)
	for i := range n {
		w, err := r.Watch(ctxT(b, 10*time.Minute), svcName(i))
		if err != nil {
			b.Fatal(err)
		}
		ws[i] = w
	}
	for i, w := range ws {
		u, err := w.Next()
		if err != nil || len(u.Instances) != 1 {
			b.Fatalf("first Next of %s = %v, %v", svcName(i), u, err)
		}
	}
	first := time.Since(start)
	g1, h1 := goroutinesHeap()
	w1, err := srv.Watches()
	if err != nil {
		b.Fatal(err)
	}
	for _, w := range ws {
		w.Stop()
	}
	b.ReportMetric(float64(g1-g0), "goroutines")
	b.ReportMetric(float64(h1-h0)/(1<<20), "MiB-heap")
	b.ReportMetric(float64(w1-w0), "server-watches")
	b.ReportMetric(float64(first.Milliseconds()), "ms-all-first-states")
	b.Logf("%d watched services: +%d goroutines, +%.1f MiB heap, +%d server watches, every first state after %v",
		n, g1-g0, float64(h1-h0)/(1<<20), w1-w0, first.Round(time.Millisecond))
}

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// populate creates n services of one ephemeral instance each, on a
// connection that lives as long as the benchmark.
func populate(b *testing.B, srv *zktest.Server, root string, n int) {
	c := srv.Connect(b, 10*time.Second)
	acl := gozk.WorldACL(gozk.PermAll)
	for _, p := range []string{"/regchain-test", root} {
		if _, err := c.Create(p, nil, 0, acl); err != nil && !errors.Is(err, gozk.ErrNodeExists) {
			b.Fatal(err)
		}
	}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			in := &registry.Instance{ID: "i1", Name: svcName(i), Version: "v1", Endpoints: []string{fmt.Sprintf("grpc://10.0.%d.%d:9000", i>>8&255, i&255)}}
			data, _ := registry.Marshal(in)
			_, err := c.Create(root+"/"+in.Name, nil, 0, acl)
			if err == nil || errors.Is(err, gozk.ErrNodeExists) {
				_, err = c.Create(root+"/"+in.Name+"/i1", data, gozk.FlagEphemeral, acl)
			}
			if err != nil {
				mu.Lock()
				first = cmpOr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// goroutinesHeap returns the number of goroutines and the live heap after
// a collection.
func goroutinesHeap() (int, uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}
