package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// watchReader watches name on r until the test ends (testutil.Reader,
// checking the adapter's Source).
func watchReader(t *testing.T, r registry.Registry, name string) *testutil.Reader {
	return testutil.WatchReader(t, r, name, Source)
}

// regState returns the registration of name/id, or nil.
func regState(r *Registry, name, id string) *registry.RegistrationState {
	for _, s := range r.Registrations() {
		if s.Instance.Name == name && s.Instance.ID == id {
			return &s
		}
	}
	return nil
}

// heldBy checks on the server, through cli, that key holds exactly val
// under a lease that is alive; it returns "" or what is wrong.
func heldBy(ctx context.Context, cli *clientv3.Client, key, val string) string {
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return err.Error()
	}
	if len(resp.Kvs) != 1 {
		return "key missing"
	}
	kv := resp.Kvs[0]
	if string(kv.Value) != val {
		return fmt.Sprintf("value %q, want %q", kv.Value, val)
	}
	if kv.Lease == 0 {
		return "no lease"
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		return err.Error()
	}
	if ttl.TTL <= 0 {
		return "lease expired"
	}
	return ""
}

func mustMarshal(t *testing.T, in *registry.Instance) string {
	t.Helper()
	b, err := registry.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEtcdRestart stops etcd for longer than the lease TTL and starts it
// again on the same data: the registration comes back and the watcher
// resumes without any call.
func TestEtcdRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := newClient(t, srv.Endpoint())
	r := newRegistry(t, testConfig(t, srv.Endpoint()))
	ctx := ctxT(t, time.Minute)
	a := instance("restart", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	rd := watchReader(t, r, a.Name)
	rd.Until(t, 10*time.Second, a.Name, a)

	stopping := time.Now()
	srv.Stop()
	t.Logf("etcd stopped in %v", time.Since(stopping))
	testutil.WaitFor(t, 20*time.Second, "registration seen as lost", func() string {
		if s := regState(r, a.Name, a.ID); s == nil || s.Live {
			return fmt.Sprintf("state %+v", s)
		}
		return ""
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	key, val := r.rec.key(a.Name, a.ID), mustMarshal(t, a)
	regBack := testutil.WaitFor(t, 20*time.Second, "registration back after restart", func() string {
		if s := regState(r, a.Name, a.ID); s == nil || !s.Live {
			return fmt.Sprintf("state %+v", s)
		}
		return heldBy(ctx, cli, key, val)
	})
	b := instance(a.Name, "b", 9001)
	if _, err := cli.Put(ctx, r.rec.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
		t.Fatal(err)
	}
	rd.Until(t, 20*time.Second, a.Name, a, b)
	watchBack := time.Since(restarted)
	got, err := r.GetService(ctx, a.Name)
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{a, b}) {
		t.Errorf("GetService after restart = %v, %v; want [a b]", got, err)
	}
	t.Logf("RECOVERY etcd restart: registration live %v after Start, watcher delivering %v after Start", regBack, watchBack)
}

// TestPartitionLongerThanTTL cuts the registry off from etcd until the
// server expires the lease, then heals: the registration is restored with
// no call from the user.
func TestPartitionLongerThanTTL(t *testing.T) {
	srv := etcdtest.Start(t)
	px, err := faultproxy.Start(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	cli := newClient(t, srv.Endpoint())
	r := newRegistry(t, testConfig(t, px.Addr()))
	ctx := ctxT(t, time.Minute)
	a := instance("partition", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	key, val := r.rec.key(a.Name, a.ID), mustMarshal(t, a)
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get %s = %v, %v", key, resp, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)

	px.Partition()
	parted := time.Now()
	testutil.WaitFor(t, 20*time.Second, "lease expired on the server", func() string {
		ttl, err := cli.TimeToLive(ctx, lease)
		if err != nil {
			return err.Error()
		}
		if ttl.TTL != -1 {
			return fmt.Sprintf("TTL %d", ttl.TTL)
		}
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return err.Error()
		}
		if len(resp.Kvs) != 0 {
			return "key still there"
		}
		return ""
	})
	t.Logf("lease expired on the server %v after the partition began", time.Since(parted))
	if s := regState(r, a.Name, a.ID); s == nil || s.Live {
		// The client's keepalive deadline is the TTL too, so by now it knows.
		testutil.WaitFor(t, 10*time.Second, "registration seen as lost", func() string {
			if s := regState(r, a.Name, a.ID); s == nil || s.Live {
				return fmt.Sprintf("state %+v", s)
			}
			return ""
		})
	}
	px.Heal()
	took := testutil.WaitFor(t, 20*time.Second, "registration restored after heal", func() string {
		if s := regState(r, a.Name, a.ID); s == nil || !s.Live {
			return fmt.Sprintf("state %+v", s)
		}
		return heldBy(ctx, cli, key, val)
	})
	t.Logf("RECOVERY partition > TTL: registration restored %v after heal", took)
}

// TestCompactionDuringWatch makes the watchers' stream miss events that
// are then compacted away: they must list again and reach the right state.
func TestCompactionDuringWatch(t *testing.T) {
	// With the connection monitor the registry notices the severed
	// connection and lists again; without it (other endpoints of a cluster
	// up) clientv3 resumes the streams from their compacted revisions.
	for _, monitor := range []bool{true, false} {
		t.Run(fmt.Sprintf("monitor=%v", monitor), func(t *testing.T) { testCompactionDuringWatch(t, monitor) })
	}
}

func testCompactionDuringWatch(t *testing.T, monitor bool) {
	srv := etcdtest.Start(t)
	px, err := faultproxy.Start(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, px.Addr())
	var rec *logRecorder
	cfg.Logger = testLogger(t, &rec)
	cfg.noConnMonitor = !monitor
	r := newRegistry(t, cfg)
	ctx := ctxT(t, time.Minute)
	svc := "compact"
	put := func(in *registry.Instance) {
		t.Helper()
		if _, err := cli.Put(ctx, r.rec.key(in.Name, in.ID), mustMarshal(t, in)); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := instance(svc, "a", 9000), instance(svc, "b", 9001), instance(svc, "c", 9002)
	put(a)
	one := watchReader(t, r, svc)
	all := watchReader(t, r, "")
	one.Until(t, 10*time.Second, svc, a)
	all.Until(t, 10*time.Second, svc, a)

	px.Partition()
	put(b)
	if _, err := cli.Delete(ctx, r.rec.key(a.Name, a.ID)); err != nil {
		t.Fatal(err)
	}
	put(c)
	c2 := c.Clone()
	c2.Version = "v2"
	put(c2)
	other := instance("compact-other", "x", 9100)
	put(other)
	resp, err := cli.Get(ctx, "anything")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	px.Sever() // the streams break; they resume after Heal
	healed := time.Now()
	px.Heal()
	one.Until(t, 20*time.Second, svc, b, c2)
	all.Until(t, 20*time.Second, svc, b, c2)
	all.Until(t, 20*time.Second, other.Name, other)
	took := time.Since(healed)
	if n := rec.count("compacted"); !monitor && n == 0 {
		t.Errorf("no watcher reported a compacted revision; the test did not exercise the relist path")
	}
	if n := rec.count("connection lost"); monitor && n == 0 {
		t.Errorf("the registry did not notice the severed connection")
	}
	t.Logf("RECOVERY compaction during watch: watchers correct %v after heal", took)
}

// TestTamper has another client revoke the lease, delete the key or
// overwrite it: the registration restores itself.
func TestTamper(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cases := []struct {
		name   string
		tamper func(ctx context.Context, key string, lease clientv3.LeaseID) error
	}{
		{"RevokeLease", func(ctx context.Context, key string, lease clientv3.LeaseID) error {
			_, err := cli.Revoke(ctx, lease)
			return err
		}},
		{"DeleteKey", func(ctx context.Context, key string, lease clientv3.LeaseID) error {
			_, err := cli.Delete(ctx, key)
			return err
		}},
		{"OverwriteKey", func(ctx context.Context, key string, lease clientv3.LeaseID) error {
			_, err := cli.Put(ctx, key, `{"id":"a","name":"tamper","version":"evil","metadata":null,"endpoints":["grpc://10.6.6.6:1"]}`)
			return err
		}},
		{"OverwriteKeyOtherLease", func(ctx context.Context, key string, lease clientv3.LeaseID) error {
			g, err := cli.Grant(ctx, 60)
			if err != nil {
				return err
			}
			// Same bytes, someone else's lease: when that lease goes, so would the key.
			resp, err := cli.Get(ctx, key)
			if err != nil || len(resp.Kvs) != 1 {
				return fmt.Errorf("get: %v %v", resp, err)
			}
			_, err = cli.Put(ctx, key, string(resp.Kvs[0].Value), clientv3.WithLease(g.ID))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t, testConfig(t, srv.Endpoint()))
			ctx := ctxT(t, time.Minute)
			a := instance("tamper", "a", 9000)
			if err := r.Register(ctx, a); err != nil {
				t.Fatal(err)
			}
			rd := watchReader(t, r, a.Name)
			rd.Until(t, 10*time.Second, a.Name, a)
			key, val := r.rec.key(a.Name, a.ID), mustMarshal(t, a)
			resp, err := cli.Get(ctx, key)
			if err != nil || len(resp.Kvs) != 1 {
				t.Fatalf("Get = %v, %v", resp, err)
			}
			lease := clientv3.LeaseID(resp.Kvs[0].Lease)
			start := time.Now()
			if err := tc.tamper(ctx, key, lease); err != nil {
				t.Fatal(err)
			}
			took := testutil.WaitFor(t, 20*time.Second, "key restored", func() string {
				if why := heldBy(ctx, cli, key, val); why != "" {
					return why
				}
				resp, err := cli.Get(ctx, key)
				if err != nil {
					return err.Error()
				}
				if s := regState(r, a.Name, a.ID); s == nil || !s.Live {
					return fmt.Sprintf("state %+v", s)
				}
				r.mu.Lock()
				g := r.regs[key]
				r.mu.Unlock()
				if g == nil {
					return "registration gone"
				}
				if got := clientv3.LeaseID(resp.Kvs[0].Lease); got != g.currentLease() {
					return fmt.Sprintf("key on lease %x, registration holds %x", got, g.currentLease())
				}
				return ""
			})
			rd.Until(t, 10*time.Second, a.Name, a)
			t.Logf("RECOVERY %s: key restored %v after tampering (watcher back at [a] %v)", tc.name, took, time.Since(start))
		})
	}
}

// TestRegisterWhileDown: with etcd unreachable Register fails with
// ErrUnavailable and keeps nothing, reads fail with ErrUnavailable, Watch
// returns at once and reports the failure, and everything works once etcd
// is reachable.
func TestRegisterWhileDown(t *testing.T) {
	srv := shared.Server(t)
	px, err := faultproxy.Start(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	px.Refuse(true)
	cfg := testConfig(t, px.Addr())
	cfg.Timeout = 300 * time.Millisecond
	r := newRegistry(t, cfg)
	ctx := ctxT(t, time.Minute)
	a := instance("down", "a", 9000)

	if err := r.Register(ctx, a); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Register while down = %v, want ErrUnavailable", err)
	}
	if regs := r.Registrations(); len(regs) != 0 {
		t.Errorf("Registrations after a failed Register = %+v, want none", regs)
	}
	if _, err := r.GetService(ctx, a.Name); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("GetService while down = %v, want ErrUnavailable", err)
	}
	if _, err := r.ListServices(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("ListServices while down = %v, want ErrUnavailable", err)
	}
	if err := r.Ping(ctx); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Ping while down = %v, want ErrUnavailable", err)
	}
	if err := r.Deregister(ctx, a); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Deregister while down = %v, want ErrUnavailable", err)
	}
	start := time.Now()
	rd := watchReader(t, r, a.Name)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Watch took %v while etcd is down; it must return at once", d)
	}
	select {
	case res := <-rd.C:
		if !errors.Is(res.Err, registry.ErrUnavailable) {
			t.Errorf("first Next while down = %+v, %v; want a transient ErrUnavailable", res.U, res.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first Next while down: nothing within 10s")
	}

	px.Refuse(false)
	rd.Until(t, 10*time.Second, a.Name) // the current, empty, state
	testutil.WaitFor(t, 10*time.Second, "Ping after etcd is back", func() string {
		if err := r.Ping(ctx); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := r.Register(ctx, a); err != nil {
		t.Fatalf("Register after etcd is back: %v", err)
	}
	rd.Until(t, 10*time.Second, a.Name, a)
}

// TestUpdateWhileDown: updating a registration while etcd is unreachable
// fails, but the registration stays with the new data and writes it when
// etcd is back.
func TestUpdateWhileDown(t *testing.T) {
	srv := shared.Server(t)
	px, err := faultproxy.Start(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, px.Addr())
	cfg.Timeout = 300 * time.Millisecond
	r := newRegistry(t, cfg)
	ctx := ctxT(t, time.Minute)
	a := instance("update-down", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	px.Refuse(true)
	px.Sever()
	a2 := a.Clone()
	a2.Version = "v2"
	if err := r.Register(ctx, a2); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("update while down = %v, want ErrUnavailable", err)
	}
	s := regState(r, a.Name, a.ID)
	if s == nil || s.Live || s.Instance.Version != "v2" || s.LastError == nil {
		t.Fatalf("state after a failed update = %+v, want pending v2 with an error", s)
	}
	px.Refuse(false)
	took := testutil.WaitFor(t, 20*time.Second, "update written once etcd is back", func() string {
		if s := regState(r, a.Name, a.ID); s == nil || !s.Live {
			return fmt.Sprintf("state %+v", s)
		}
		return heldBy(ctx, cli, r.rec.key(a.Name, a.ID), mustMarshal(t, a2))
	})
	t.Logf("RECOVERY update while down: written %v after etcd became reachable", took)
}

// TestSameInstanceTwoRegistries: two registries holding the same (name, ID)
// overwrite each other with growing delays instead of fighting at network
// speed, and once either deregisters (the older or the younger) the
// other's record is back at once: a delete is not part of the fight.
func TestSameInstanceTwoRegistries(t *testing.T) {
	for _, older := range []bool{true, false} {
		name := "younger deregisters"
		if older {
			name = "older deregisters"
		}
		t.Run(name, func(t *testing.T) { testSameInstanceTwoRegistries(t, older) })
	}
}

func testSameInstanceTwoRegistries(t *testing.T, olderLeaves bool) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg1 := testConfig(t, srv.Endpoint())
	cfg1.MaxBackoff = 5 * time.Second // the default: the fight's delays grow to seconds
	var rec1, rec2 *logRecorder
	cfg1.Logger = testLogger(t, &rec1)
	cfg2 := cfg1
	cfg2.Logger = testLogger(t, &rec2)
	r1, r2 := newRegistry(t, cfg1), newRegistry(t, cfg2)
	ctx := ctxT(t, time.Minute)
	a1 := instance("twice", "a", 9000)
	a2 := instance("twice", "a", 9001)
	if err := r1.Register(ctx, a1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r2.Register(ctx, a2); err != nil {
		t.Fatal(err)
	}
	const fixes = 8
	testutil.WaitFor(t, 60*time.Second, "both registries restore their record several times", func() string {
		n1, n2 := rec1.count("restoring"), rec2.count("restoring")
		if n1+n2 < fixes {
			return fmt.Sprintf("%d + %d restores", n1, n2)
		}
		return ""
	})
	// Undamped, the two would exchange thousands of writes per second. The
	// damped schedule (first at once, then 50-100ms, 100-200ms, ... capped
	// at MaxBackoff) needs well over 200ms for 8 restores.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("%d restores took only %v: the registries fight without backing off", fixes, d)
	}
	t.Logf("%d restores in %v", rec1.count("restoring")+rec2.count("restoring"), time.Since(start))
	leaving, staying, kept := r2, r1, a1
	if olderLeaves {
		leaving, staying, kept = r1, r2, a2
	}
	if err := leaving.Deregister(ctx, kept); err != nil {
		t.Fatal(err)
	}
	took := testutil.WaitFor(t, 20*time.Second, "the other record back after one deregistered", func() string {
		return heldBy(ctx, cli, staying.rec.key(kept.Name, kept.ID), mustMarshal(t, kept))
	})
	t.Logf("MEASURE record back %v after the %s registry deregistered", took, map[bool]string{true: "older", false: "younger"}[olderLeaves])
	// The fight's delays reach seconds (MaxBackoff 5s); a delete must not
	// wait for them. A second is generous for a loaded machine.
	if took > time.Second {
		t.Errorf("record back only %v after the other registry deregistered; want well under a second", took)
	}
}

// TestWatchReportsOutage: a watcher whose etcd goes away must say so
// (a transient ErrUnavailable from Next) instead of staying silent for the
// whole outage -- clientv3 keeps retrying its watch stream without closing
// the channel -- and must deliver what changed once etcd is back.
func TestWatchReportsOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := newClient(t, srv.Endpoint())
	r := newRegistry(t, testConfig(t, srv.Endpoint()))
	ctx := ctxT(t, time.Minute)
	a := instance("outage", "a", 9000)
	if _, err := cli.Put(ctx, r.rec.key(a.Name, a.ID), mustMarshal(t, a)); err != nil {
		t.Fatal(err)
	}
	one := watchReader(t, r, a.Name)
	all := watchReader(t, r, "")
	one.Until(t, 10*time.Second, a.Name, a)
	all.Until(t, 10*time.Second, a.Name, a)

	srv.Stop()
	stopped := time.Now()
	for name, rd := range map[string]*testutil.Reader{"named": one, "watch-all": all} {
		select {
		case res := <-rd.C:
			if !errors.Is(res.Err, registry.ErrUnavailable) {
				t.Fatalf("%s watcher while etcd is down: Next = %+v, %v; want a transient ErrUnavailable", name, res.U, res.Err)
			}
			t.Logf("%s watcher reported the outage after %v: %v", name, time.Since(stopped), res.Err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s watcher silent for 20s while etcd is down", name)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	b := instance(a.Name, "b", 9001)
	testutil.WaitFor(t, 20*time.Second, "put after restart", func() string {
		if _, err := cli.Put(ctx, r.rec.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
			return err.Error()
		}
		return ""
	})
	one.Until(t, 20*time.Second, a.Name, a, b)
	all.Until(t, 20*time.Second, a.Name, a, b)
}

// TestWatchResumesAfterConnectionLoss: when the connection comes back and
// nothing was compacted, the shared watch resumes where it was and the
// states are confirmed: by reading the watched service again after writes,
// at once after an outage without any. The watchers report the loss, see
// every change made meanwhile, and get their unchanged states again after
// an outage without changes; the namespace is not listed again.
func TestWatchResumesAfterConnectionLoss(t *testing.T) {
	_, px, r, cli := proxied(t, nil)
	ctx := ctxT(t, time.Minute)
	a, b := instance("resume", "a", 9000), instance("resume", "b", 9001)
	if _, err := cli.Put(ctx, r.rec.key(a.Name, a.ID), mustMarshal(t, a)); err != nil {
		t.Fatal(err)
	}
	// Two watchers of one service (a watch-all would make the hub hold
	// every service, which it confirms with a list).
	readers := map[string]*testutil.Reader{"first": watchReader(t, r, a.Name), "second": watchReader(t, r, a.Name)}
	for _, rd := range readers {
		rd.Until(t, 10*time.Second, a.Name, a)
	}
	lists := r.hub.listCount()
	// next returns rd's next result for svc: an error, or an Update of svc.
	next := func(name string, rd *testutil.Reader) testutil.WatchResult {
		t.Helper()
		for {
			select {
			case res := <-rd.C:
				if res.Err != nil || res.U.Service == a.Name {
					return res
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s watcher silent for 20s", name)
			}
		}
	}
	outage := func(during func()) {
		t.Helper()
		px.Partition()
		during()
		px.Sever()
		for name, rd := range readers {
			if res := next(name, rd); !errors.Is(res.Err, registry.ErrUnavailable) {
				t.Fatalf("%s watcher after the connection was lost: %+v, %v; want a transient ErrUnavailable", name, res.U, res.Err)
			}
		}
		px.Heal()
	}

	// Changes during the outage arrive through the resumed watch.
	outage(func() {
		if _, err := cli.Put(ctx, r.rec.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Delete(ctx, r.rec.key(a.Name, a.ID)); err != nil {
			t.Fatal(err)
		}
	})
	for _, rd := range readers {
		rd.Until(t, 20*time.Second, a.Name, b)
	}
	// No change: the states are confirmed, delivered again unchanged.
	testutil.WaitFor(t, 20*time.Second, "the first outage's states confirmed", func() string {
		if r.hub.isStale() {
			return "not yet"
		}
		return ""
	})
	for _, rd := range readers {
	drain:
		for {
			select {
			case <-rd.C:
			default:
				break drain
			}
		}
	}
	outage(func() {})
	for name, rd := range readers {
		res := next(name, rd)
		if res.Err != nil || !registry.EqualInstances(res.U.Instances, []*registry.Instance{b}) {
			t.Fatalf("%s watcher after an outage without changes: %+v, %v; want its state confirmed", name, res.U, res.Err)
		}
	}
	if n := r.hub.listCount() - lists; n != 0 {
		t.Fatalf("the namespace was listed %d times after the reconnections; want 0 (the watch resumes)", n)
	}
}

// TestWatchHubOutlivesWatchers: a chain stops a tier's watchers when the
// tier goes down and starts new ones when it is up again. The hub outlives
// them (hubLinger) and resumes with the connection, so the new watchers get
// the current state, changes made during the outage included, without a
// list of the namespace; once it has lingered without watchers, it stops.
func TestWatchHubOutlivesWatchers(t *testing.T) {
	_, px, r, cli := proxied(t, func(c *Config) { c.hubLinger = 2 * time.Second })
	ctx := ctxT(t, time.Minute)
	a, b := instance("linger", "a", 9000), instance("linger", "b", 9001)
	if _, err := cli.Put(ctx, r.rec.key(a.Name, a.ID), mustMarshal(t, a)); err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctx, a.Name)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := testutil.Next(t, w, 10*time.Second); err != nil || !registry.EqualInstances(u.Instances, []*registry.Instance{a}) {
		t.Fatalf("first Next = %v, %v; want a", u, err)
	}
	lists := r.hub.listCount()

	px.Partition()
	if _, err := cli.Put(ctx, r.rec.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
		t.Fatal(err)
	}
	px.Sever()
	if _, err := testutil.Next(t, w, 10*time.Second); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Next after the connection was lost: %v; want ErrUnavailable", err)
	}
	w.Stop() // the tier is down: its watchers go
	px.Heal()
	testutil.WaitFor(t, 10*time.Second, "the hub confirms its state after the reconnection", func() string {
		if r.hub.isStale() {
			return "still awaiting the confirmation"
		}
		return ""
	})
	w2, err := r.Watch(ctx, a.Name) // the tier is up: new watchers
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if u, err := testutil.Next(t, w2, 10*time.Second); err != nil || !registry.EqualInstances(u.Instances, []*registry.Instance{a, b}) {
		t.Fatalf("new watcher's first Next = %v, %v; want a and b", u, err)
	}
	if n := r.hub.listCount() - lists; n != 0 {
		t.Fatalf("the namespace was listed %d times; want 0 (the hub outlived its watchers)", n)
	}
	w2.Stop()
	testutil.WaitFor(t, 10*time.Second, "the hub stops after lingering", func() string {
		r.hub.mu.Lock()
		defer r.hub.mu.Unlock()
		if r.hub.running {
			return "still running"
		}
		return ""
	})
}
