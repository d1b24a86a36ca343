package consul

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// recoverWithin bounds every recovery the fault tests wait for.
const recoverWithin = 30 * time.Second

// TestFaultAgentRestart kills the agent and starts an empty one on the same
// ports (dev mode loses every service): the heartbeat must register the
// instance again and the watcher must resume.
func TestFaultAgentRestart(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	r := newRegistry(t, testConfig(t, a.Addr))
	other := newRegistry(t, testConfig(t, a.Addr))
	svc := "fault-restart"
	in := instance(svc, "r1", 7000)
	if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctxT(t, time.Minute), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	until(t, w, svc, recoverWithin, in)

	a.Restart(t)
	restarted := time.Now()
	if got, err := other.GetService(ctxT(t, 5*time.Second), svc); !errors.Is(err, registry.ErrNotFound) {
		// The heartbeat may already have put it back; that is fine too.
		t.Logf("right after restart: %v, %v", got, err)
	}
	waitFor(t, "instance restored after agent restart", recoverWithin, testutil.Sees(t, other, svc, in))
	t.Logf("RECOVERY agent restart: instance passing again %v after the new agent was ready", time.Since(restarted))
	waitFor(t, "registration live", recoverWithin, live(r, in, true))

	// The watcher resumed: it sees a change made after the restart.
	in2 := instance(svc, "r2", 7010)
	if err := other.Register(ctxT(t, 10*time.Second), in2); err != nil {
		t.Fatal(err)
	}
	errs := until(t, w, svc, recoverWithin, in, in2)
	t.Logf("RECOVERY agent restart: watcher delivered the new state %v after the restart (%d transient errors seen)", time.Since(restarted), errs)
}

// TestFaultDeregisteredBehindOurBack removes the service with the raw API,
// as an operator would: the heartbeat must notice and register it again.
func TestFaultDeregisteredBehindOurBack(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	r := newRegistry(t, testConfig(t, a.Addr))
	raw := a.Client(t)
	svc := "fault-dereg"
	in := instance(svc, "d1", 7100)
	if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registered", recoverWithin, testutil.Sees(t, r, svc, in))

	if err := raw.Agent().ServiceDeregister(in.ID); err != nil {
		t.Fatalf("raw deregister: %v", err)
	}
	removed := time.Now()
	if _, _, err := raw.Agent().Service(in.ID, nil); err == nil {
		t.Fatal("service still on the agent after a raw deregister")
	}
	waitFor(t, "instance restored", recoverWithin, testutil.Sees(t, r, svc, in))
	t.Logf("RECOVERY deregistered behind our back: instance passing again after %v", time.Since(removed))
	waitFor(t, "registration live", recoverWithin, live(r, in, true))
}

// TestFaultPartition puts the registry behind a proxy and partitions it from
// the agent for longer than the TTL: the check turns critical, passing-only
// readers see the instance gone, the registration reports itself not live,
// the watcher behind the partition reports errors instead of freezing; after
// healing, the heartbeat makes the instance pass again with no user call and
// the watcher catches up with what changed during the partition.
//
// The partition does not last TTL + DeregisterCriticalServiceAfter: Consul
// does not reap before a minute (plus up to 30s of reaper interval), and a
// service the agent removed comes back by the path
// TestFaultDeregisteredBehindOurBack tests (the agent answers "unknown
// check", the heartbeat registers again).
func TestFaultPartition(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	p, err := faultproxy.Start(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r := newRegistry(t, testConfig(t, p.Addr())) // behind the proxy
	observer := newRegistry(t, testConfig(t, a.Addr))
	svc := "fault-partition"
	in := instance(svc, "p1", 7200)
	if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctxT(t, 2*time.Minute), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	until(t, w, svc, recoverWithin, in)

	p.Partition()
	partitioned := time.Now()
	gone := waitFor(t, "instance critical during the partition", recoverWithin, testutil.Sees(t, observer, svc))
	t.Logf("partition: instance left passing-only reads after %v (TTL %v)", gone, testTTL)
	waitFor(t, "registration reported pending", recoverWithin, live(r, in, false))
	for _, s := range r.Registrations() {
		if s.LastError == nil || !errors.Is(s.LastError, registry.ErrUnavailable) {
			t.Errorf("during the partition: LastError = %v, want an ErrUnavailable", s.LastError)
		}
	}
	// The watcher behind the partition must say so.
	if _, err := testutil.Next(t, w, recoverWithin); err == nil {
		t.Error("watcher behind a partition delivered an update instead of an error")
	} else {
		t.Logf("watcher behind the partition reported after %v: %v", time.Since(partitioned), err)
	}
	// A change the partitioned side cannot see yet.
	in2 := instance(svc, "p2", 7210)
	if err := observer.Register(ctxT(t, 10*time.Second), in2); err != nil {
		t.Fatal(err)
	}

	p.Heal()
	healed := time.Now()
	t.Logf("partition lasted %v", healed.Sub(partitioned))
	waitFor(t, "instance passing again after heal", recoverWithin, testutil.Sees(t, observer, svc, in, in2))
	t.Logf("RECOVERY partition: instance passing again %v after healing", time.Since(healed))
	d := waitFor(t, "registration live", recoverWithin, live(r, in, true))
	t.Logf("RECOVERY partition: registration reported live %v after healing", d)
	until(t, w, svc, recoverWithin, in, in2)
	t.Logf("RECOVERY partition: watcher caught up %v after healing", time.Since(healed))
}

// TestFaultLastInstanceLeaves checks that watchers (named and watch-all) see
// a service go empty, both when its last instance deregisters and when its
// process dies (the registry closes without deregistering: the check turns
// critical after the TTL).
func TestFaultLastInstanceLeaves(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	watcher := newRegistry(t, testConfig(t, a.Addr))
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			svc := fmt.Sprintf("fault-last-%v", crash)
			r := newRegistry(t, testConfig(t, a.Addr))
			in := instance(svc, "l1", 7300)
			if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
				t.Fatal(err)
			}
			w, err := watcher.Watch(ctxT(t, time.Minute), svc)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			all, err := watcher.Watch(ctxT(t, time.Minute), "")
			if err != nil {
				t.Fatal(err)
			}
			defer all.Stop()
			until(t, w, svc, recoverWithin, in)
			until(t, all, svc, recoverWithin, in)

			left := time.Now()
			if crash {
				r.Close()
			} else if err := r.Deregister(ctxT(t, 10*time.Second), in); err != nil {
				t.Fatal(err)
			}
			until(t, w, svc, recoverWithin)
			t.Logf("last instance left (crash %v): watcher saw the empty set after %v", crash, time.Since(left))
			until(t, all, svc, recoverWithin)
			t.Logf("last instance left (crash %v): watch-all saw the empty set after %v", crash, time.Since(left))
		})
	}
}
