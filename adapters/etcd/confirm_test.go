package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// The confirmation of the watchers' states after a lost connection (see
// follower.follow and lister.recover). These tests began as a review's
// proofs of three bugs in its first version.

// nextResult returns rd's next result, or false after d.
func nextResult(rd *testutil.Reader, d time.Duration) (testutil.WatchResult, bool) {
	select {
	case res := <-rd.C:
		return res, true
	case <-time.After(d):
		return testutil.WatchResult{}, false
	}
}

// proxied returns an etcd server, a proxy to it, a registry behind the
// proxy (its Config changed by with, when not nil) and a client straight
// to the server.
func proxied(t *testing.T, with func(*Config)) (*embedetcd.Server, *faultproxy.Proxy, *Registry, *clientv3.Client) {
	t.Helper()
	srv := etcdtest.Start(t)
	px, err := faultproxy.Start(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	cfg := testConfig(t, px.Addr())
	if with != nil {
		with(&cfg)
	}
	return srv, px, newRegistry(t, cfg), newClient(t, srv.Endpoint())
}

// A watcher started while etcd is unreachable hears so at once, like the
// watchers that were there when the connection was lost.
func TestWatcherStartedDuringOutage(t *testing.T) {
	_, px, r, cli := proxied(t, nil)
	ctx := ctxT(t, time.Minute)
	a := instance("during", "a", 9000)
	if _, err := cli.Put(ctx, r.rec.key(a.Name, a.ID), mustMarshal(t, a)); err != nil {
		t.Fatal(err)
	}
	old := watchReader(t, r, a.Name)
	old.Until(t, 10*time.Second, a.Name, a)
	px.Partition()
	px.Sever()
	if res, ok := nextResult(old, 20*time.Second); !ok || !errors.Is(res.Err, registry.ErrUnavailable) {
		t.Fatalf("watcher after the loss: %+v, %v (ok %v); want ErrUnavailable", res.U, res.Err, ok)
	}
	nw := watchReader(t, r, a.Name)
	if res, ok := nextResult(nw, 10*time.Second); !ok || !errors.Is(res.Err, registry.ErrUnavailable) {
		t.Fatalf("watcher started during the outage: %+v, %v (ok %v); want ErrUnavailable at once", res.U, res.Err, ok)
	}
	px.Heal()
	nw.Until(t, 20*time.Second, a.Name, a)
}

// etcd is wiped while the client is cut off (same cluster ID), and the new
// history passes the revision the hub had applied before the client comes
// back. The watch resumes in the new history; the states are confirmed by
// reading the service again, not taken for current: the old history's
// record goes.
func TestWipeDuringOutage(t *testing.T) {
	srv, px, r, cli := proxied(t, nil)
	ctx := ctxT(t, 2*time.Minute)
	a, b := instance("wipe", "a", 9000), instance("wipe", "b", 9001)
	resp, err := cli.Put(ctx, r.rec.key(a.Name, a.ID), mustMarshal(t, a))
	if err != nil {
		t.Fatal(err)
	}
	oldRev := resp.Header.Revision
	rd := watchReader(t, r, a.Name)
	rd.Until(t, 10*time.Second, a.Name, a)
	px.Partition()
	px.Sever()
	if res, ok := nextResult(rd, 20*time.Second); !ok || !errors.Is(res.Err, registry.ErrUnavailable) {
		t.Fatalf("after the loss: %+v, %v (ok %v)", res.U, res.Err, ok)
	}
	if err := srv.Wipe(); err != nil {
		t.Fatal(err)
	}
	cli2 := newClient(t, srv.Endpoint())
	var rev int64
	for i := 0; rev <= oldRev+20; i++ {
		resp, err := cli2.Put(ctx, fmt.Sprintf("/elsewhere/%d", i), "x")
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	if _, err := cli2.Put(ctx, r.rec.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
		t.Fatal(err)
	}
	t.Logf("old history at %d, new history at %d", oldRev, rev+1)
	px.Heal()
	rd.Until(t, 30*time.Second, a.Name, b) // etcd holds only b
}

// A progress notification that arrives after a loss was reported (one
// requested just before the connection died, say) confirms nothing: the
// states stay awaiting the reconnection.
func TestProgressAfterLossConfirmsNothing(t *testing.T) {
	srv := shared.Server(t)
	cfg := testConfig(t, srv.Endpoint())
	cfg.noConnMonitor = true // the test reports the loss itself
	r := newRegistry(t, cfg)
	cli := newClient(t, srv.Endpoint())
	ctx := ctxT(t, time.Minute)
	a := instance("inflight", "a", 9000)
	if _, err := cli.Put(ctx, r.rec.key(a.Name, a.ID), mustMarshal(t, a)); err != nil {
		t.Fatal(err)
	}
	rd := watchReader(t, r, a.Name)
	rd.Until(t, 10*time.Second, a.Name, a)
	resp, err := cli.Put(ctx, "/elsewhere/x", "x") // the store passes the watch's start
	if err != nil {
		t.Fatal(err)
	}
	r.c.ready.Store(false)
	r.hub.connLost(0)
	if res, ok := nextResult(rd, 10*time.Second); !ok || !errors.Is(res.Err, registry.ErrUnavailable) {
		t.Fatalf("after the loss: %+v, %v (ok %v)", res.U, res.Err, ok)
	}
	// The answer to a request sent before the connection died.
	testutil.WaitFor(t, 10*time.Second, "a progress notification handled", func() string {
		if err := r.c.client.RequestProgress(clientv3.WithRequireLeader(context.Background())); err != nil {
			return err.Error()
		}
		r.hub.mu.Lock()
		defer r.hub.mu.Unlock()
		if r.hub.st.rev < resp.Header.Revision {
			return fmt.Sprintf("hub at revision %d, want %d", r.hub.st.rev, resp.Header.Revision)
		}
		return ""
	})
	if !r.hub.isStale() {
		t.Fatal("a progress notification confirmed the states while the connection was reported lost")
	}
}

// A loss whose states a list has confirmed since (reported while the
// follower was listing) is not confirmed again when the next follow takes
// it: every watcher would get the same state twice in a row.
func TestConfirmedLossNotConfirmedAgain(t *testing.T) {
	srv := shared.Server(t)
	cfg := testConfig(t, srv.Endpoint())
	cfg.noConnMonitor = true // the test reports the loss itself
	r := newRegistry(t, cfg)
	r.c.ready.Store(true)
	cli := newClient(t, srv.Endpoint())
	ctx := ctxT(t, time.Minute)
	a, b := instance("leftover", "a", 9000), instance("leftover", "b", 9001)
	if _, err := cli.Put(ctx, r.rec.key(a.Name, a.ID), mustMarshal(t, a)); err != nil {
		t.Fatal(err)
	}
	rd := watchReader(t, r, a.Name)
	rd.Until(t, 10*time.Second, a.Name, a)
	if r.hub.isStale() {
		t.Fatal("states awaiting a confirmation before any loss")
	}
	poke(r.hub.lost) // a loss the states were confirmed after, left for the follow
	testutil.WaitFor(t, 10*time.Second, "the follow took the leftover loss", func() string {
		if len(r.hub.lost) != 0 {
			return "not yet"
		}
		return ""
	})
	if _, err := cli.Put(ctx, r.rec.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
		t.Fatal(err)
	}
	res, ok := nextResult(rd, 10*time.Second)
	if !ok || res.Err != nil || len(res.U.Instances) != 2 {
		t.Fatalf("next after the leftover loss: %+v, %v (ok %v); want the state with a and b, not a again", res.U, res.Err, ok)
	}
}
