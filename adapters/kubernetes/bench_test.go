package kubernetes

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/adapters/kubernetes/kubetest"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// The figures of the Kubernetes tier, each against a real kube-apiserver:
//
//	go test -run '^$' -bench . -benchtime 200x ./   (in adapters/kubernetes)
//
// BenchmarkOutageReads runs once whatever -benchtime says (its outage lasts
// outageFor); so does BenchmarkMemory1000x10.
//
// Measured on a shared 2-core machine (2026-12-08, load averages as
// uptime showed them):
//   - SliceToChainUpdate, 200 updates, load 3.7-4.2: update p50 6.1 ms,
//     p99 13.9 ms, max 15.4 ms; the write's own round trip p50 5.8 ms,
//     p99 13.9 ms (the chain's update follows the write's answer by a
//     fraction of a millisecond).
//   - OutageReads, load 4.8-5.5: 26,611 reads during the 30 s outage,
//     0 failed, 0 empty (served from the snapshot).
//   - Memory1000x10, load 4.8-5.0: 2.6 MB of heap held by the registry
//     for 20,000 instances.

// BenchmarkSliceToChainUpdate: the time from an EndpointSlice update (its
// request sent to the API server) to a chain watcher's update that holds
// it ("update"), and the write's own round trip ("write"). Each iteration
// moves the slice's one endpoint to a new address.
func BenchmarkSliceToChainUpdate(b *testing.B) {
	srv := kubetest.Start(b, kubetest.Options{})
	admin := srv.Client(b, kubetest.UserAdmin)
	ns := newNamespace(b, admin)
	r := newRegistry(b, testConfig(b, srv, ns))
	c, err := chain.New([]chain.Tier{{Name: "kubernetes", Registry: r, ReadOnly: true}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	es := controllerSlice(ns, "lat-1", "lat", nil, endpoint("10.1.0.0", "", "", true))
	createSlice(b, admin, es)
	w, err := c.Watch(ctxT(b, time.Hour), "lat")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	watchUntil(b, w, "lat", "10.1.0.0:9000", "10.1.0.0:8000")
	api := admin.DiscoveryV1().EndpointSlices(ns)
	cur, err := api.Get(ctxT(b, 30*time.Second), "lat-1", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	writes := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		addr := fmt.Sprintf("10.1.%d.%d", (i+1)/250, (i+1)%250+1)
		cur.Endpoints = []discoveryv1.Endpoint{endpoint(addr, "", "", true)}
		// The clock starts when the write is sent: the update can reach
		// the watcher before the write's answer reaches the writer.
		start := time.Now()
		if cur, err = api.Update(ctxT(b, 30*time.Second), cur, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		writes = append(writes, time.Since(start))
		want := addr + ":9000"
		for {
			u, err := w.Next()
			if err != nil {
				b.Fatalf("Next: %v", err)
			}
			if slices.Contains(ids(u.Instances), want) {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, "update", lat)
	reportPercentiles(b, "write", writes)
}

func reportPercentiles(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	b.ReportMetric(float64(at(0.50).Microseconds())/1000, what+"-p50-ms")
	b.ReportMetric(float64(at(0.99).Microseconds())/1000, what+"-p99-ms")
	b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, what+"-max-ms")
	b.Logf("%s, %d samples: p50 %v, p99 %v, max %v", what, len(d), at(0.50), at(0.99), d[len(d)-1])
}

// outageFor is how long BenchmarkOutageReads keeps the API server down.
const outageFor = 30 * time.Second

// BenchmarkOutageReads: reads through a chain (the Kubernetes tier and a
// snapshot) while the API server is killed for outageFor, then started
// again. Every read must answer the service's instances: it reports the
// reads made, the failed and the empty ones, and fails if either is not 0.
func BenchmarkOutageReads(b *testing.B) {
	srv := kubetest.Start(b, kubetest.Options{})
	admin := srv.Client(b, kubetest.UserAdmin)
	ns := newNamespace(b, admin)
	r := newRegistry(b, testConfig(b, srv, ns))
	store, err := file.OpenStore(filepath.Join(b.TempDir(), "snap.db"), file.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	c, err := chain.New([]chain.Tier{{Name: "kubernetes", Registry: r, ReadOnly: true}},
		chain.WithSnapshot(store), chain.WithFlushInterval(100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	createSlice(b, admin, controllerSlice(ns, "out-1", "out", nil,
		endpoint("10.2.0.1", "", "", true), endpoint("10.2.0.2", "", "", true)))
	testutil.WaitFor(b, time.Minute, "the chain reads out", func() string {
		ins, err := c.GetService(ctxT(b, 10*time.Second), "out")
		if err != nil || len(ins) != 4 {
			return fmt.Sprintf("%d instances, %v", len(ins), err)
		}
		return ""
	})
	var reads, failed, empty int
	read := func() {
		reads++
		ins, err := c.GetService(ctxT(b, 10*time.Second), "out")
		switch {
		case err != nil:
			failed++
			if failed <= 5 {
				b.Logf("read %d: %v", reads, err)
			}
		case len(ins) == 0:
			empty++
		}
	}
	// One read a millisecond: a reader that does not spin a CPU.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	srv.Kill()
	down := time.Now()
	for time.Since(down) < outageFor {
		<-tick.C
		read()
	}
	readsDown := reads
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	// Reads go on until the tier answers again (Ping through the registry).
	for r.Ping(ctxT(b, 10*time.Second)) != nil {
		<-tick.C
		read()
	}
	b.StopTimer()
	b.ReportMetric(float64(readsDown), "reads-during-outage")
	b.ReportMetric(float64(reads), "reads")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(float64(empty), "empty")
	b.Logf("outage %v: %d reads during it, %d in all until the API server answered again, %d failed, %d empty",
		outageFor, readsDown, reads, failed, empty)
	if failed != 0 || empty != 0 {
		b.Errorf("%d failed and %d empty reads during the outage, want 0 and 0", failed, empty)
	}
}

// BenchmarkMemory1000x10: the heap the registry holds for 1,000 Services
// of 10 ready endpoints each (2 ports: 20,000 instances), all read once
// (b.N is ignored: the heap is measured once).
func BenchmarkMemory1000x10(b *testing.B) {
	const services, perService = 1000, 10
	srv := kubetest.Start(b, kubetest.Options{})
	admin := srv.Client(b, kubetest.UserAdmin)
	ns := newNamespace(b, admin)
	api := admin.DiscoveryV1().EndpointSlices(ns)
	ctx := ctxT(b, 30*time.Minute)
	sem := make(chan struct{}, 8)
	errc := make(chan error, services)
	for s := range services {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			eps := make([]discoveryv1.Endpoint, perService)
			for e := range eps {
				eps[e] = endpoint(fmt.Sprintf("10.%d.%d.%d", 3+s/250, s%250, e+1), "z"+strconv.Itoa(e%3), "n"+strconv.Itoa(e), true)
			}
			name := "mem-" + strconv.Itoa(s)
			_, err := api.Create(ctx, controllerSlice(ns, name+"-1", name, nil, eps...), metav1.CreateOptions{})
			errc <- err
		}()
	}
	for range services {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	before := heapInUse()
	cfg := testConfig(b, srv, ns)
	cfg.Logger = nil
	r := newRegistry(b, cfg)
	b.ResetTimer()
	names, err := r.ListServices(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, name := range names {
		ins, err := r.GetService(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		n += len(ins)
	}
	b.StopTimer()
	if len(names) != services || n != services*perService*2 {
		b.Fatalf("read %d services, %d instances; want %d, %d", len(names), n, services, services*perService*2)
	}
	after := heapInUse()
	b.ReportMetric(float64(after-before)/(1<<20), "heap-MB")
	b.Logf("%d services × %d endpoints (%d instances): registry heap %.1f MB", services, perService, n, float64(after-before)/(1<<20))
	runtime.KeepAlive(r)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
