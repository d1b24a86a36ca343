package chain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// kratosInstance is Kratos' registry.ServiceInstance, as its contrib etcd
// registry marshals it.
type kratosInstance struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Metadata  map[string]string `json:"metadata"`
	Endpoints []string          `json:"endpoints"`
}

// kratosRegister writes what Kratos' contrib etcd registry writes for one
// instance — key <ns>/<name>/<id>, the instance's JSON, under a lease kept
// alive — with a plain etcd client, as a Kratos app of the fleet would.
func kratosRegister(tb testing.TB, cli *clientv3.Client, ns string, in kratosInstance) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	value, err := json.Marshal(in)
	if err != nil {
		tb.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 15)
	if err != nil {
		tb.Fatalf("grant: %v", err)
	}
	if _, err := cli.Put(ctx, fmt.Sprintf("%s/%s/%s", ns, in.Name, in.ID), string(value), clientv3.WithLease(lease.ID)); err != nil {
		tb.Fatalf("put: %v", err)
	}
	kctx, kcancel := context.WithCancel(context.Background())
	ch, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		tb.Fatalf("keepalive: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
		}
	}()
	tb.Cleanup(func() { kcancel(); <-done })
}

// readStats reads a service in a loop until stopped and counts the reads,
// the empty answers and the failures.
type readStats struct {
	reads, empty, failed atomic.Int64
	lastErr              atomic.Value
	stop                 chan struct{}
	done                 chan struct{}
}

func startCountingReader(c *chain.Chain, svc string) *readStats {
	rs := &readStats{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(rs.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-rs.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			got, err := c.GetService(ctx, svc)
			cancel()
			rs.reads.Add(1)
			switch {
			case errors.Is(err, registry.ErrNotFound) || err == nil && len(got) == 0:
				rs.empty.Add(1)
			case err != nil:
				rs.failed.Add(1)
				rs.lastErr.Store(err.Error())
			}
		}
	}()
	return rs
}

func (rs *readStats) end() {
	close(rs.stop)
	<-rs.done
}

// TestMixedFleetEtcdOutage: five instances registered only in etcd, in
// Kratos' layout, by plain etcd clients (a Kratos app of the fleet); a
// consumer on chain etcd → Consul → snapshot. Consul is up but never held
// the service: it is no authority for it. etcd is stopped for 60 s: the
// consumer gets no empty answer and no failed read, and its watcher no
// empty state; a process started during the outage (from the snapshot
// file) neither. This is the package's one long real-time test.
func TestMixedFleetEtcdOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	agent := consultest.Start(t, consultest.Options{})
	ns := namespace()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	for i := range 5 {
		kratosRegister(t, cli, ns, kratosInstance{
			ID: fmt.Sprintf("k%d", i), Name: "kratos.app", Version: "v1",
			Metadata:  map[string]string{"zone": "z1"},
			Endpoints: []string{fmt.Sprintf("grpc://10.1.0.%d:9000", i)},
		})
	}
	cons, err := consul.New(consul.Config{Address: agent.Addr, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close() })
	snapPath := filepath.Join(t.TempDir(), "snapshot.db")
	newConsumer := func() (*chain.Chain, func()) {
		store := openStore(t, snapPath)
		c, err := chain.New([]chain.Tier{
			{Name: "etcd", Registry: etcdTier(t, srv, ns)},
			{Name: "consul", Registry: cons},
		}, realOpts(chain.WithSnapshot(store))...)
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		closeAll := func() { once.Do(func() { c.Close(); store.Close() }) }
		t.Cleanup(closeAll)
		return c, closeAll
	}
	c, closeC := newConsumer()
	mustGet(t, c, "kratos.app", "k0", "k1", "k2", "k3", "k4")
	wl := startWatchLog(t, c, "kratos.app")
	wl.until(t, 10*time.Second, "etcd", "k0", "k1", "k2", "k3", "k4")
	testutil.WaitFor(t, 10*time.Second, "consul watched", func() string {
		if c.Status().Tiers[1].Up {
			return ""
		}
		return "consul not up"
	})

	rs := startCountingReader(c, "kratos.app")
	stopAsync(t, srv)
	outage := 60 * time.Second
	time.Sleep(outage)
	rs.end()
	t.Logf("running consumer over %v of etcd outage: %d reads, %d empty, %d failed", outage, rs.reads.Load(), rs.empty.Load(), rs.failed.Load())
	if rs.empty.Load() != 0 || rs.failed.Load() != 0 {
		t.Errorf("%d empty answers and %d failed reads (last error %v), want none", rs.empty.Load(), rs.failed.Load(), rs.lastErr.Load())
	}
	for _, u := range wl.all() {
		if len(u.Instances) == 0 {
			t.Errorf("the watcher got an empty state from %s", u.Source)
		}
	}
	a, err := c.GetServiceWithInfo(context.Background(), "kratos.app")
	if err != nil || len(a.Instances) != 5 || !a.Stale {
		t.Errorf("GetServiceWithInfo = %d instances from %s, stale %v, %v; want the 5, stale", len(a.Instances), a.Source, a.Stale, err)
	}
	t.Logf("served from %s, %v old", a.Source, a.Age(time.Now()).Round(time.Second))
	wl.w.Stop()

	// A process started during the outage, from the snapshot file.
	closeC()
	c2, _ := newConsumer()
	start := time.Now()
	got, err := c2.GetService(context.Background(), "kratos.app")
	first := time.Since(start)
	if err != nil || len(got) != 5 {
		t.Fatalf("first read of the new process = %v, %v", ids(got), err)
	}
	rs2 := startCountingReader(c2, "kratos.app")
	time.Sleep(10 * time.Second)
	rs2.end()
	t.Logf("process started during the outage: first read %v; then %d reads, %d empty, %d failed", first, rs2.reads.Load(), rs2.empty.Load(), rs2.failed.Load())
	if rs2.empty.Load() != 0 || rs2.failed.Load() != 0 {
		t.Errorf("new process: %d empty answers and %d failed reads (last error %v), want none", rs2.empty.Load(), rs2.failed.Load(), rs2.lastErr.Load())
	}
}
