package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// holds describes a mirror's held drops as "service mirrored->source reads".
func holds(m *mirror.Mirror) string {
	s := ""
	for _, h := range m.Stats().Holds {
		s += fmt.Sprintf("%s %d->%d ", h.Service, h.Mirrored, h.Source)
	}
	return s
}

// A wiped source is held: the target keeps the records while the guard
// re-reads, the hold shows in Stats, and the providers registering again
// end it without the target ever losing a record. A drop that stays is
// confirmed after the window.
func TestGuardHoldsWipedSource(t *testing.T) {
	src, dst := registrytest.NewMemory(), registrytest.NewMemory()
	defer src.Close()
	defer dst.Close()
	a, b, c := inst("svc", "a", 1), inst("svc", "b", 2), inst("svc", "c", 3)
	register(t, src, a, b, c)
	// Memory removes one instance at a time; with a fifth of the service
	// as the largest step that is no drop, the first removal is held
	// already. (TestEtcdDualActiveWipe wipes at once, with the default
	// share.)
	guard := chain.Guard{Window: 2 * time.Second, Confirmations: 2, MaxDropShare: 0.2}
	m, _ := start(t, mirror.Config{Source: src, Target: dst, Origin: "dc-a", Guard: guard})
	waitState(t, dst, "svc", "a<dc-a> b<dc-a> c<dc-a>")
	lost := watchLoss(t, dst, "svc", 3)

	deregister(t, src, a, b, c) // the wipe
	waitFor(t, "the drop held", func() string {
		if h := holds(m); h != "svc 3->0 " {
			return "holds: " + h
		}
		return ""
	})
	register(t, src, a, b, c) // the providers come back
	waitFor(t, "the hold discarded", func() string {
		if g := m.Stats().Guard; g.Discarded != 1 || holds(m) != "" {
			return fmt.Sprintf("guard %+v holds %q", g, holds(m))
		}
		return ""
	})
	if n := lost(); n != 0 {
		t.Errorf("the target lost records %d times during the wipe", n)
	}

	// A drop that stays goes through after the window.
	start := time.Now()
	deregister(t, src, a, b, c)
	waitState(t, dst, "svc", "-")
	if took := time.Since(start); took < guard.Window {
		t.Errorf("a confirmed drop went through after %v, before the window %v", took, guard.Window)
	}
	if g := m.Stats().Guard; g.Held != 2 || g.Confirmed != 1 {
		t.Errorf("guard stats %+v, want 2 held, 1 confirmed", g)
	}
}

// ReleaseHold lets a held drop through at once.
func TestGuardReleaseHold(t *testing.T) {
	src, dst := registrytest.NewMemory(), registrytest.NewMemory()
	defer src.Close()
	defer dst.Close()
	register(t, src, inst("svc", "a", 1), inst("svc", "b", 2))
	m, _ := start(t, mirror.Config{Source: src, Target: dst, Origin: "dc-a", Guard: chain.Guard{Window: time.Hour, MaxDropShare: 0.2}})
	waitState(t, dst, "svc", "a<dc-a> b<dc-a>")
	if m.ReleaseHold("svc") {
		t.Error("ReleaseHold with nothing held reported a hold")
	}
	deregister(t, src, inst("svc", "a", 1), inst("svc", "b", 2))
	waitFor(t, "the drop held", func() string {
		if h := holds(m); h != "svc 2->0 " {
			return "holds: " + h
		}
		return ""
	})
	if !m.ReleaseHold("svc") {
		t.Fatal("ReleaseHold found no hold")
	}
	waitState(t, dst, "svc", "-")
	if g := m.Stats().Guard; g.Released != 1 {
		t.Errorf("guard stats %+v, want 1 released", g)
	}
}

// watchLoss watches service in r and returns a function that tells how
// many states showed fewer than n instances, from the first state with n.
func watchLoss(t *testing.T, r registry.Registry, service string, n int) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := r.Watch(ctx, service)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mu sync.Mutex
	losses, full := 0, false
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			if err != nil {
				if errors.Is(err, registry.ErrStopped) {
					return
				}
				continue
			}
			mu.Lock()
			if len(u.Instances) >= n {
				full = true
			} else if full {
				losses++
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return losses
	}
}

// Close leaves the records; Withdraw removes them; both end Run with nil;
// a Run after them fails at once.
func TestCloseLeavesWithdrawRemoves(t *testing.T) {
	for _, withdraw := range []bool{false, true} {
		t.Run(fmt.Sprintf("withdraw=%v", withdraw), func(t *testing.T) {
			src, dst := registrytest.NewMemory(), registrytest.NewMemory()
			defer src.Close()
			defer dst.Close()
			register(t, src, inst("svc", "a", 1))
			m, err := mirror.New(mirror.Config{Source: src, Target: dst, Origin: "dc-a", Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- m.Run(context.Background()) }()
			waitState(t, dst, "svc", "a<dc-a>")
			want := "a<dc-a>"
			if withdraw {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := m.Withdraw(ctx); err != nil {
					t.Fatal(err)
				}
				want = "-"
			} else if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
			if got := state(dst, "svc"); got != want {
				t.Errorf("target after stopping: %s, want %s", got, want)
			}
			if err := m.Run(context.Background()); err == nil {
				t.Error("Run after stopping succeeded")
			}
			m.Close() // idempotent
		})
	}
}

// A Run whose ctx ends leaves the records, as Close does.
func TestRunCtxEndLeavesRecords(t *testing.T) {
	src, dst := registrytest.NewMemory(), registrytest.NewMemory()
	defer src.Close()
	defer dst.Close()
	register(t, src, inst("svc", "a", 1))
	m, err := mirror.New(mirror.Config{Source: src, Target: dst, Origin: "dc-a", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitState(t, dst, "svc", "a<dc-a>")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if got := state(dst, "svc"); got != "a<dc-a>" {
		t.Errorf("target after ctx end: %s, want the record left", got)
	}
}

// The incident of issue 23: two etcds mirrored both ways, dc-b's etcd wiped
// (every key of the namespace deleted at once, an operator's mistake) three
// times. dc-b's providers and the A→B mirror put their records back within
// a second; meanwhile the B→A mirror holds the drop, so dc-a never loses a
// record of dc-b: readers in dc-a see no gap.
func TestEtcdDualActiveWipe(t *testing.T) {
	a, b := etcdtest.Start(t), etcdtest.Start(t)
	appA, appB := etcdRegistry(t, a), etcdRegistry(t, b)
	register(t, appA, inst("svc", "a1", 1), inst("svc", "a2", 2))
	register(t, appB, inst("svc", "b1", 3), inst("svc", "b2", 4))
	guard := chain.Guard{Window: 10 * time.Second, Confirmations: 2} // outlasts the providers' re-registration
	start(t, mirror.Config{Source: etcdRegistry(t, a), Target: etcdRegistry(t, b), Origin: "dc-a", Guard: guard, MaxBackoff: 300 * time.Millisecond})
	mBA, _ := start(t, mirror.Config{Source: etcdRegistry(t, b), Target: etcdRegistry(t, a), Origin: "dc-b", Guard: guard, MaxBackoff: 300 * time.Millisecond})
	waitState(t, appA, "svc", "a1<> a2<> b1<dc-b> b2<dc-b>")
	waitState(t, appB, "svc", "a1<dc-a> a2<dc-a> b1<> b2<>")
	lostInA := watchLoss(t, appA, "svc", 4)

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{b.Endpoint()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for round := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Delete(ctx, "/mirror/", clientv3.WithPrefix())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Deleted != 4 {
			t.Fatalf("round %d: wiped %d keys, want 4", round, resp.Deleted)
		}

		back := waitState(t, appB, "svc", "a1<dc-a> a2<dc-a> b1<> b2<>")
		waitFor(t, "no drop held", func() string {
			if h := holds(mBA); h != "" {
				return "holds: " + h
			}
			return ""
		})
		t.Logf("round %d: dc-b refilled %v after the wipe; dc-a lost %d states so far; guard %+v",
			round, back.Round(time.Millisecond), lostInA(), mBA.Stats().Guard)

	}
	if n := lostInA(); n != 0 {
		t.Errorf("dc-a saw %d states missing dc-b's records, want 0", n)
	}
	if lost, lingering := diff(t, appB, appA, "svc"); len(lost)+len(lingering) > 0 {
		t.Errorf("A and B differ: lost %v lingering %v", lost, lingering)
	}
}

// Config.TTL: the records live on leases of that TTL whatever the target
// registry's default, so a closed mirror's records go after it; a target
// that cannot honour a TTL of its own is refused.
func TestEtcdMirrorTTL(t *testing.T) {
	a, b := etcdtest.Start(t), etcdtest.Start(t)
	appA, appB := etcdRegistry(t, a), etcdRegistry(t, b)
	target, err := etcd.New(etcd.Config{Endpoints: []string{b.Endpoint()}, Namespace: "/mirror", TTL: time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	register(t, appA, inst("svc", "x", 1))
	m, _ := start(t, mirror.Config{Source: etcdRegistry(t, a), Target: target, Origin: "dc-a", TTL: 3 * time.Second})
	waitState(t, appB, "svc", "x<dc-a>")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{b.Endpoint()}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/mirror/svc/x")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get the mirrored record: %v, %v", resp, err)
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != 3 {
		t.Errorf("the mirrored record's lease: %+v, %v; want a TTL of 3s (the target's own is 60s)", ttl, err)
	}
	m.Close()
	target.Close() // its keepalives stop: the records go after 3s
	took := waitState(t, appB, "svc", "-")
	t.Logf("records of a closed mirror gone after %v (Config.TTL 3s, the target's TTL 60s)", took.Round(time.Millisecond))

	if _, err := mirror.New(mirror.Config{Source: appA, Target: registrytest.NewMemory(), Origin: "x", TTL: time.Second}); err == nil {
		t.Error("New with a TTL and a target without TTLRegistrar succeeded")
	}
}
