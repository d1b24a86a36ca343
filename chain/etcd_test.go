package chain_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// shared is one embedded etcd for the tests that never stop it; each test
// uses a namespace of its own. TestMain stops it before goleak looks.
var shared etcdtest.Shared

func namespace() string {
	var b [6]byte
	rand.Read(b[:])
	return "/regchain-chain-" + hex.EncodeToString(b[:])
}

// etcdTier returns an etcd registry on srv with short leases and timeouts,
// closed when the test ends.
func etcdTier(tb testing.TB, srv *embedetcd.Server, ns string) *etcd.Registry {
	tb.Helper()
	r, err := etcd.New(etcd.Config{
		Endpoints:  []string{srv.Endpoint()},
		Namespace:  ns,
		TTL:        2 * time.Second,
		Timeout:    time.Second,
		MaxBackoff: 300 * time.Millisecond,
		Logger:     quietLogger(),
	})
	if err != nil {
		tb.Fatalf("etcd.New: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

func openStore(tb testing.TB, path string) *file.Store {
	tb.Helper()
	s, err := file.OpenStore(path, file.Config{Logger: quietLogger()})
	if err != nil {
		tb.Fatalf("OpenStore: %v", err)
	}
	return s
}

// realOpts are the options of the real-server tests: fast probes, a short
// hysteresis and guard grace.
func realOpts(extra ...chain.Option) []chain.Option {
	return append([]chain.Option{
		chain.WithLogger(quietLogger()),
		chain.WithProbeInterval(200 * time.Millisecond),
		chain.WithProbeTimeout(500 * time.Millisecond),
		chain.WithCallTimeout(time.Second),
		chain.WithFailbackAfter(2 * time.Second),
		chain.WithGuard(chain.Guard{Window: time.Second}),
	}, extra...)
}

// watchLog collects a chain watcher's updates in the background.
type watchLog struct {
	w    registry.Watcher
	done chan struct{}
	mu   sync.Mutex
	ups  []*registry.Update
}

func startWatchLog(tb testing.TB, r registry.Registry, svc string) *watchLog {
	tb.Helper()
	w, err := r.Watch(context.Background(), svc)
	if err != nil {
		tb.Fatalf("Watch: %v", err)
	}
	l := &watchLog{w: w, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			u, err := w.Next()
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
			if err == nil {
				l.mu.Lock()
				l.ups = append(l.ups, u)
				l.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() { w.Stop(); <-l.done })
	return l
}

func (l *watchLog) last() *registry.Update {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ups) == 0 {
		return nil
	}
	return l.ups[len(l.ups)-1]
}

func (l *watchLog) all() []*registry.Update {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ups)
}

// until waits for the last update to have the source and IDs.
func (l *watchLog) until(tb testing.TB, timeout time.Duration, source string, wantIDs ...string) time.Duration {
	tb.Helper()
	return testutil.WaitFor(tb, timeout, fmt.Sprintf("watcher at %s %v", source, wantIDs), func() string {
		u := l.last()
		if u == nil {
			return "no update"
		}
		if u.Source != source || fmt.Sprint(ids(u.Instances)) != fmt.Sprint(wantIDs) {
			return fmt.Sprintf("last = %s %v", u.Source, ids(u.Instances))
		}
		return ""
	})
}

// reader calls GetService in a loop and counts failures and latencies.
type reader struct {
	stop     chan struct{}
	done     chan struct{}
	reads    atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	lat      []time.Duration
	lastErr  error
}

func startReader(r registry.Registry, svc string) *reader {
	rd := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(rd.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-rd.stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			_, err := r.GetService(context.Background(), svc)
			d := time.Since(start)
			rd.reads.Add(1)
			rd.mu.Lock()
			rd.lat = append(rd.lat, d)
			if err != nil {
				rd.failures.Add(1)
				rd.lastErr = err
			}
			rd.mu.Unlock()
		}
	}()
	return rd
}

func (rd *reader) finish() (reads, failures int64, p99, maxLat time.Duration, lastErr error) {
	close(rd.stop)
	<-rd.done
	rd.mu.Lock()
	defer rd.mu.Unlock()
	sort.Slice(rd.lat, func(i, j int) bool { return rd.lat[i] < rd.lat[j] })
	if n := len(rd.lat); n > 0 {
		p99, maxLat = rd.lat[n*99/100], rd.lat[n-1]
	}
	return rd.reads.Load(), rd.failures.Load(), p99, maxLat, rd.lastErr
}

// stopAsync stops srv in the background (a graceful stop waits for open
// streams) and returns when it began; the test waits for it to finish.
func stopAsync(tb testing.TB, srv *embedetcd.Server) time.Time {
	tb.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		srv.Stop()
	}()
	tb.Cleanup(func() { <-done })
	return start
}

// tierIDs returns the IDs a tier holds for svc, read directly.
func tierIDs(tb testing.TB, r registry.Registry, svc string) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := r.GetService(ctx, svc)
	if errors.Is(err, registry.ErrNotFound) {
		return []string{}
	}
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	return ids(got)
}

// TestKitEtcd runs the conformance kit against a chain over an etcd tier
// and a Memory tier, with a bbolt snapshot.
func TestKitEtcd(t *testing.T) {
	srv := shared.Server(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		store := openStore(t, filepath.Join(t.TempDir(), "snap.db"))
		t.Cleanup(func() { store.Close() })
		c, err := chain.New([]chain.Tier{
			{Name: "etcd", Registry: etcdTier(t, srv, namespace())},
			{Name: "memory", Registry: registrytest.NewMemoryNamed("memory")},
		}, realOpts(chain.WithSnapshot(store))...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// TestEtcdFailoverReplay: two real etcd servers and a bbolt snapshot. Kill
// tier 1: no read fails, watchers move to tier 2, a new registration lands
// there. Kill tier 2: the snapshot answers. Revive both: the registrations
// are replayed, the chain fails back, no instance is lost or duplicated.
func TestEtcdFailoverReplay(t *testing.T) {
	srv1, srv2 := etcdtest.Start(t), etcdtest.Start(t)
	ns := namespace()
	e1, e2 := etcdTier(t, srv1, ns), etcdTier(t, srv2, ns)
	store := openStore(t, filepath.Join(t.TempDir(), "snap.db"))
	t.Cleanup(func() { store.Close() })
	c, err := chain.New([]chain.Tier{{Name: "etcd1", Registry: e1}, {Name: "etcd2", Registry: e2}},
		realOpts(chain.WithSnapshot(store))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	for i, id := range []string{"a1", "a2"} {
		if err := c.Register(ctx, inst("svc", id, 9000+i)); err != nil {
			t.Fatal(err)
		}
	}
	wl := startWatchLog(t, c, "svc")
	wl.until(t, 10*time.Second, "etcd1", "a1", "a2")
	rd := startReader(c, "svc")

	killed := stopAsync(t, srv1)
	wl.until(t, 20*time.Second, "etcd2", "a1", "a2")
	t.Logf("tier 1 killed: watchers on tier 2 %v after Stop began", time.Since(killed))
	for _, u := range wl.all() {
		if len(u.Instances) != 2 {
			t.Errorf("a watcher saw %s %v during failover", u.Source, ids(u.Instances))
		}
	}

	if err := c.Register(ctx, inst("svc", "a3", 9002)); err != nil {
		t.Fatalf("Register with tier 1 down: %v", err)
	}
	wl.until(t, 10*time.Second, "etcd2", "a1", "a2", "a3")
	if got := tierIDs(t, e2, "svc"); fmt.Sprint(got) != "[a1 a2 a3]" {
		t.Errorf("tier 2 holds %v, want [a1 a2 a3]", got)
	}

	killed = stopAsync(t, srv2)
	wl.until(t, 20*time.Second, chain.SnapshotSource, "a1", "a2", "a3")
	t.Logf("tier 2 killed: watchers on the snapshot %v after Stop began", time.Since(killed))
	if u := wl.last(); time.Since(u.Time) > 10*time.Second {
		t.Errorf("snapshot Time %v is not when the tier was last seen", u.Time)
	}
	names, err := c.ListServices(ctx)
	if err != nil || !slices.Contains(names, "svc") {
		t.Errorf("ListServices with every tier down = %v, %v", names, err)
	}
	reads, failures, p99, maxLat, lastErr := rd.finish()
	t.Logf("%d reads during the outages: %d failed, p99 %v, max %v", reads, failures, p99, maxLat)
	if failures != 0 {
		t.Errorf("%d of %d reads failed during the outages, last: %v", failures, reads, lastErr)
	}

	testutil.WaitFor(t, 20*time.Second, "both servers stopped", func() string {
		if srv1.Running() || srv2.Running() {
			return "still running"
		}
		return ""
	})
	if err := srv2.Start(); err != nil {
		t.Fatal(err)
	}
	revived := time.Now()
	if err := srv1.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("tier 1 started in %v", time.Since(revived))
	testutil.WaitFor(t, 20*time.Second, "replay into tier 1", func() string {
		if got := tierIDs(t, e1, "svc"); fmt.Sprint(got) != "[a1 a2 a3]" {
			return fmt.Sprintf("tier 1 holds %v", got)
		}
		return ""
	})
	t.Logf("revived: registrations replayed into tier 1 after %v", time.Since(revived))
	wl.until(t, 20*time.Second, "etcd1", "a1", "a2", "a3")
	t.Logf("revived: failback to tier 1 after %v", time.Since(revived))
	if got := tierIDs(t, e2, "svc"); fmt.Sprint(got) != "[a1 a2 a3]" {
		t.Errorf("tier 2 holds %v, want [a1 a2 a3]", got)
	}
	testutil.WaitFor(t, 10*time.Second, "nothing pending", func() string {
		if n := c.Status().PendingRegistrations; n != 0 {
			return fmt.Sprintf("%d pending", n)
		}
		return ""
	})
	for _, r := range c.Registrations() {
		if !r.Live {
			t.Errorf("registration %s not live: %v", r.Instance, r.LastError)
		}
	}
}

// TestEtcdRestartDuringOutage: a chain started while every tier is down
// answers at once from the snapshot an earlier chain left, then moves to the
// tier when it comes back.
func TestEtcdRestartDuringOutage(t *testing.T) {
	srv1, srv2 := etcdtest.Start(t), etcdtest.Start(t)
	ns := namespace()
	path := filepath.Join(t.TempDir(), "snap.db")
	tiers := func() []chain.Tier {
		return []chain.Tier{{Name: "etcd1", Registry: etcdTier(t, srv1, ns)}, {Name: "etcd2", Registry: etcdTier(t, srv2, ns)}}
	}
	ctx := context.Background()
	store := openStore(t, path)
	// c1 owns its tiers: closing it ends their keepalives, as a process
	// exit would.
	c1, err := chain.New(tiers(), realOpts(chain.WithSnapshot(store), chain.WithOwnTiers(true))...)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"b1", "b2"} {
		if err := c1.Register(ctx, inst("peer", id, 9100+i)); err != nil {
			t.Fatal(err)
		}
	}
	wl := startWatchLog(t, c1, "peer")
	wl.until(t, 10*time.Second, "etcd1", "b1", "b2")
	srv1.Stop()
	srv2.Stop()
	if err := c1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	store.Close()

	// The process restarts while both servers are down.
	store = openStore(t, path)
	t.Cleanup(func() { store.Close() })
	start := time.Now()
	c2, err := chain.New(tiers(), realOpts(chain.WithSnapshot(store))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	got, err := c2.GetService(ctx, "peer")
	elapsed := time.Since(start)
	if err != nil || fmt.Sprint(ids(got)) != "[b1 b2]" {
		t.Fatalf("GetService on a chain started during the outage = %v, %v", ids(got), err)
	}
	t.Logf("restart during the outage: New + first GetService from the snapshot in %v", elapsed)
	if v, err := c2.Lookup(ctx, "peer"); err != nil || v.Source() != chain.SnapshotSource {
		t.Errorf("first view = %q, %v; want it from the snapshot", v.Source(), err)
	}
	wl2 := startWatchLog(t, c2, "peer")
	wl2.until(t, 5*time.Second, chain.SnapshotSource, "b1", "b2")
	if err := srv2.Start(); err != nil {
		t.Fatal(err)
	}
	// c1 is gone, so its leases run out: tier 2 comes back with the
	// instances until their 2s TTL ends, then empty; the guard holds the
	// drop for its grace and lets it through once the re-read confirms it.
	wl2.until(t, 30*time.Second, "etcd2")
	st := c2.Status()
	t.Logf("status after recovery: %+v", st.Services)
}

// TestEtcdGuard: an operator's delete of a service's keys in a steady etcd
// (a `del --prefix` on the wrong key) is held, re-read over the window and
// only then served.
func TestEtcdGuard(t *testing.T) {
	srv1 := etcdtest.Start(t)
	ns := namespace()
	e1 := etcdTier(t, srv1, ns)
	c, err := chain.New([]chain.Tier{{Name: "etcd1", Registry: e1}},
		realOpts(chain.WithGuard(chain.Guard{Window: 2 * time.Second}))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	// Someone else registered x1.
	x1 := inst("other", "x1", 9200)
	if err := e1.Register(ctx, x1); err != nil {
		t.Fatal(err)
	}
	wl := startWatchLog(t, c, "other")
	wl.until(t, 10*time.Second, "etcd1", "x1")
	start := time.Now()
	if err := e1.Deregister(ctx, x1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the drop held", func() string {
		for _, s := range c.Status().Services {
			if s.Name == "other" && s.Held {
				return ""
			}
		}
		return "not held"
	})
	mustGet(t, c, "other", "x1")
	wl.until(t, 20*time.Second, "etcd1")
	d := time.Since(start)
	if d < 2*time.Second {
		t.Errorf("drop served after %v, before the 2s window", d)
	}
	t.Logf("a steady etcd's delete of the last instance: held, served after %v (window 2s)", d.Round(10*time.Millisecond))
	mustGet(t, c, "other")
	if v := metric(t, c, "regchain_chain_guard_held_total", nil); v != 1 {
		t.Errorf("held = %v, want 1", v)
	}
	if v := metric(t, c, "regchain_chain_guard_confirmed_total", nil); v != 1 {
		t.Errorf("confirmed = %v, want 1", v)
	}
}

// TestEtcdFlapping: a tier that goes down and up every second makes a
// bounded number of switches.
func TestEtcdFlapping(t *testing.T) {
	srv1, srv2 := etcdtest.Start(t), etcdtest.Start(t)
	ns := namespace()
	c, err := chain.New([]chain.Tier{{Name: "etcd1", Registry: etcdTier(t, srv1, ns)}, {Name: "etcd2", Registry: etcdTier(t, srv2, ns)}},
		realOpts(chain.WithFailbackAfter(4*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(context.Background(), inst("flap", "f1", 9300)); err != nil {
		t.Fatal(err)
	}
	wl := startWatchLog(t, c, "flap")
	wl.until(t, 10*time.Second, "etcd1", "f1")
	rd := startReader(c, "flap")
	tick := time.NewTicker(time.Second)
	for i := range 6 {
		<-tick.C
		if i%2 == 0 {
			srv1.Stop()
		} else if err := srv1.Start(); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	d := wl.until(t, 30*time.Second, "etcd1", "f1")
	t.Logf("back on tier 1 %v after the flapping stopped", d)
	ups := wl.all()
	t.Logf("updates: %s", describeUpdates(ups))
	if switches := len(ups) - 1; switches > 2 {
		t.Errorf("%d source switches for 3 flaps, want <= 2 (one failover, one failback)", switches)
	}
	reads, failures, _, _, lastErr := rd.finish()
	if failures != 0 {
		t.Errorf("%d of %d reads failed while tier 1 flapped: %v", failures, reads, lastErr)
	}
}

// With etcd stopped and the tier's circuit open, a first read of a service
// the snapshot does not hold fails at once, without waiting for the tier
// (the call timeout here is a minute: a wait would show), and the next such
// name as well.
func TestFirstReadEtcdKnownDown(t *testing.T) {
	srv := etcdtest.Start(t)
	e := etcdTier(t, srv, namespace())
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: e}},
		realOpts(chain.WithCallTimeout(time.Minute), chain.WithSnapshot(newMemStore()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv.Stop()
	testutil.WaitFor(t, 30*time.Second, "the tier found down", func() string {
		if c.Status().Tiers[0].Up {
			return "still up"
		}
		return ""
	})
	for _, name := range []string{"svc-a", "svc-b"} {
		start := time.Now()
		_, err := c.GetService(context.Background(), name)
		took := time.Since(start)
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("GetService(%s) = %v, want ErrUnavailable", name, err)
		}
		if took > 10*time.Second {
			t.Errorf("GetService(%s) waited %v for a tier known down", name, took)
		}
		t.Logf("GetService(%s) with the tier known down: %v after %v", name, err, took)
	}
}
