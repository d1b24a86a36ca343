package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// chainOnEtcd is a chain (public API only) over one etcd registry and a
// bbolt snapshot, the way a service runs it.
type chainOnEtcd struct {
	c    *chain.Chain
	tier *Registry
}

func newChainOnEtcd(t *testing.T, endpoint string, ns string, timeout time.Duration, opts ...chain.Option) *chainOnEtcd {
	t.Helper()
	cfg := testConfig(t, endpoint)
	cfg.Namespace = ns
	cfg.Timeout = timeout
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	tier, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	store, err := file.OpenStore(filepath.Join(t.TempDir(), "snapshot.db"), file.Config{Logger: cfg.Logger})
	if err != nil {
		tier.Close()
		t.Fatalf("OpenStore: %v", err)
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: tier}}, append([]chain.Option{
		chain.WithSnapshot(store),
		chain.WithLogger(cfg.Logger),
		chain.WithProbeInterval(200 * time.Millisecond),
		chain.WithProbeTimeout(500 * time.Millisecond),
		chain.WithFailbackAfter(time.Second),
		chain.WithOwnTiers(true),
	}, opts...)...)
	if err != nil {
		store.Close()
		tier.Close()
		t.Fatalf("chain.New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("chain Close: %v", err)
		}
		store.Close()
	})
	return &chainOnEtcd{c: c, tier: tier}
}

// lastState follows a watcher and keeps its last Update per service.
type lastState struct {
	mu   sync.Mutex
	last map[string]*registry.Update
}

func followWatcher(t *testing.T, r registry.Registry, name string) *lastState {
	t.Helper()
	w, err := r.Watch(context.Background(), name)
	if err != nil {
		t.Fatalf("Watch(%q): %v", name, err)
	}
	l := &lastState{last: make(map[string]*registry.Update)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
			if err == nil {
				l.mu.Lock()
				l.last[u.Service] = u
				l.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return l
}

// is returns "" when the last state of svc has exactly these IDs (and,
// when source is not "", that source).
func (l *lastState) is(svc, source string, ids ...string) string {
	l.mu.Lock()
	u := l.last[svc]
	l.mu.Unlock()
	if u == nil {
		return "no update of " + svc
	}
	got := make([]string, len(u.Instances))
	for i, in := range u.Instances {
		got[i] = in.ID
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) || source != "" && u.Source != source {
		return fmt.Sprintf("%s = %v from %s, want %v from %s", svc, got, u.Source, ids, source)
	}
	return ""
}

// holds returns "" when etcd holds exactly these instance IDs under svc.
func holds(ctx context.Context, cli *clientv3.Client, ns, svc string, ids ...string) string {
	resp, err := cli.Get(ctx, ns+"/"+svc+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err.Error()
	}
	got := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		got[i] = string(kv.Key)[len(ns)+len(svc)+2:]
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		return fmt.Sprintf("etcd holds %v, want %v", got, ids)
	}
	return ""
}

func allLive(r registry.RegistrationReporter, n int) string {
	states := r.Registrations()
	if len(states) != n {
		return fmt.Sprintf("%d registrations, want %d", len(states), n)
	}
	for _, s := range states {
		if !s.Live {
			return fmt.Sprintf("%s not Live (%v)", s.Instance, s.LastError)
		}
	}
	return ""
}

// TestChainHistory runs a chain over the etcd adapter through a wipe and a
// restore from an older snapshot: its registrations come back and are
// defended, its watchers follow the new history, Registrations agrees.
func TestChainHistory(t *testing.T) {
	for _, restore := range []bool{false, true} {
		name := "Wipe"
		if restore {
			name = "Restore"
		}
		t.Run(name, func(t *testing.T) { testChainHistory(t, restore) })
	}
}

func testChainHistory(t *testing.T, restore bool) {
	srv := etcdtest.Start(t)
	cli := newClient(t, srv.Endpoint())
	ns := newNamespace()
	ch := newChainOnEtcd(t, srv.Endpoint(), ns, time.Second)
	ctx := ctxT(t, 2*time.Minute)
	svc := "hist"
	a1, a2, a3 := instance(svc, "a1", 9000), instance(svc, "a2", 9001), instance(svc, "a3", 9002)
	if err := ch.c.Register(ctx, a1); err != nil {
		t.Fatal(err)
	}
	w := followWatcher(t, ch.c, svc)
	testutil.WaitFor(t, 20*time.Second, "a1 registered and watched", func() string {
		if why := holds(ctx, cli, ns, svc, "a1"); why != "" {
			return why
		}
		return w.is(svc, "etcd", "a1")
	})
	var snap string
	if restore {
		snap = filepath.Join(t.TempDir(), "backup.db")
		if err := srv.Snapshot(ctx, snap); err != nil {
			t.Fatal(err)
		}
	}
	// Push the revision well past what the snapshot (or an empty cluster)
	// will hold.
	for i := range 100 {
		if _, err := cli.Put(ctx, "/churn", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.c.Register(ctx, a2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "a2 registered and watched", func() string {
		return w.is(svc, "etcd", "a1", "a2")
	})

	if restore {
		if err := srv.Restore(snap); err != nil {
			t.Fatal(err)
		}
	} else if err := srv.Wipe(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	testutil.WaitFor(t, 15*time.Second, "registrations back in etcd", func() string {
		return holds(ctx, cli, ns, svc, "a1", "a2")
	})
	t.Logf("RECOVERY chain %s: registrations back in etcd %v after the server was up", t.Name(), time.Since(up))
	testutil.WaitFor(t, 15*time.Second, "chain and tier report every registration Live", func() string {
		if why := allLive(ch.c, 2); why != "" {
			return "chain: " + why
		}
		return allLive(ch.tier, 2)
	})
	t.Logf("RECOVERY chain %s: Registrations Live %v after the server was up", t.Name(), time.Since(up))
	testutil.WaitFor(t, 15*time.Second, "chain watcher on etcd's state", func() string {
		return w.is(svc, "etcd", "a1", "a2")
	})
	t.Logf("RECOVERY chain %s: chain watcher on etcd's state %v after the server was up", t.Name(), time.Since(up))
	if err := ch.c.Ping(ctx); err != nil {
		t.Errorf("chain Ping after recovery: %v", err)
	}

	start := time.Now()
	if err := ch.c.Register(ctx, a3); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "chain watcher sees a registration made after recovery", func() string {
		return w.is(svc, "etcd", "a1", "a2", "a3")
	})
	t.Logf("RECOVERY chain %s: a registration after recovery reached the chain watcher in %v", t.Name(), time.Since(start))

	for _, in := range []*registry.Instance{a1, a2} {
		if _, err := cli.Delete(ctx, ns+"/"+svc+"/"+in.ID); err != nil {
			t.Fatal(err)
		}
		took := testutil.WaitFor(t, 15*time.Second, in.ID+" deleted by another client comes back", func() string {
			return holds(ctx, cli, ns, svc, "a1", "a2", "a3")
		})
		t.Logf("RECOVERY chain %s: %s deleted by another client back in %v", t.Name(), in.ID, took)
	}
	testutil.WaitFor(t, 15*time.Second, "the chain agrees with etcd at the end", func() string {
		if why := w.is(svc, "etcd", "a1", "a2", "a3"); why != "" {
			return why
		}
		if why := allLive(ch.c, 3); why != "" {
			return "chain: " + why
		}
		return allLive(ch.tier, 3)
	})
}

// TestChainCompactionCatchUp (issue 14): a chain with its default probe
// and failback settings over the etcd adapter is cut off from etcd long
// enough to mark the tier down; meanwhile the service changes and the
// history is compacted; then the connection is cut and healed. It logs how
// long after the heal the adapter's own watcher and the chain's watcher
// deliver the new state: with the chain's default guard ({a} -> {b} drops
// every instance it held, within the guard's window after the tier's health
// changed, so it is held for the guard's grace, 5s, and then confirmed) and
// with the guard off.
func TestChainCompactionCatchUp(t *testing.T) {
	for _, guard := range []bool{true, false} {
		t.Run(fmt.Sprintf("guard=%v", guard), func(t *testing.T) { testChainCompactionCatchUp(t, guard) })
	}
}

func testChainCompactionCatchUp(t *testing.T, guard bool) {
	srv := etcdtest.Start(t)
	px, err := faultproxy.Start(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	cli := newClient(t, srv.Endpoint())
	ns := newNamespace()
	ch := newChainOnEtcd(t, px.Addr(), ns, time.Second,
		chain.WithProbeInterval(time.Second), chain.WithProbeTimeout(time.Second),
		chain.WithFailbackAfter(10*time.Second), chain.WithGuard(chain.Guard{Disabled: !guard}))
	ctx := ctxT(t, 2*time.Minute)
	svc := "compact"
	put := func(in *registry.Instance) {
		t.Helper()
		if _, err := cli.Put(ctx, ns+"/"+svc+"/"+in.ID, mustMarshal(t, in)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := instance(svc, "a", 9000), instance(svc, "b", 9001)
	put(a)
	cw := followWatcher(t, ch.c, svc)
	aw := followWatcher(t, ch.tier, svc)
	testutil.WaitFor(t, 20*time.Second, "watchers on a", func() string {
		if why := cw.is(svc, "etcd", "a"); why != "" {
			return "chain: " + why
		}
		return aw.is(svc, "", "a")
	})

	px.Partition()
	testutil.WaitFor(t, 30*time.Second, "the chain marks etcd down", func() string {
		if ch.c.Status().Tiers[0].Up {
			return "tier up"
		}
		return ""
	})
	put(b)
	if _, err := cli.Delete(ctx, ns+"/"+svc+"/a"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "anything")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	px.Sever()
	px.Heal()
	healed := time.Now()
	var adapterAt, chainAt time.Duration
	testutil.WaitFor(t, 30*time.Second, "watchers on b", func() string {
		if adapterAt == 0 && aw.is(svc, "", "b") == "" {
			adapterAt = time.Since(healed)
		}
		if chainAt == 0 && cw.is(svc, "etcd", "b") == "" {
			chainAt = time.Since(healed)
		}
		if adapterAt == 0 || chainAt == 0 {
			return fmt.Sprintf("adapter: %s; chain: %s", aw.is(svc, "", "b"), cw.is(svc, "etcd", "b"))
		}
		return ""
	})
	t.Logf("MEASURE guard=%v: after a heal past a compaction: adapter watcher on the new state in %v, chain watcher in %v", guard,
		adapterAt.Round(time.Millisecond), chainAt.Round(time.Millisecond))
}
