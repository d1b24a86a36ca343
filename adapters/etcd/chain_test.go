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
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testutil"
	"github.com/regchain/regchain/registry"
)

// chainOnEtcd is a chain (public API only) over one etcd registry and a
// bbolt snapshot, the way a service runs it.
type chainOnEtcd struct {
	c    *chain.Chain
	tier *Registry
}

func newChainOnEtcd(t *testing.T, srv *embedetcd.Server, ns string, timeout time.Duration, opts ...chain.Option) *chainOnEtcd {
	t.Helper()
	cfg := testConfig(t, srv.Endpoint())
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
	ch := newChainOnEtcd(t, srv, ns, time.Second)
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
