package mirror_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
)

const consulTTL = 2 * time.Second

func consulRegistry(t *testing.T, a *consultest.Agent) *consul.Registry {
	t.Helper()
	r, err := consul.New(consul.Config{Address: a.Addr, TTL: consulTTL, WaitTime: 5 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func zkRegistry(t *testing.T, s *zktest.Server) *zk.Registry {
	t.Helper()
	r, err := zk.New(zk.Config{Servers: []string{s.Addr}, SessionTimeout: 4 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestEtcdToConsul: records mirrored from etcd into a Consul agent live on
// the mirror's TTL checks: deleted at the origin → deregistered; mirror
// killed → critical after the TTL, gone from reads.
func TestEtcdToConsul(t *testing.T) {
	e := etcdtest.Start(t)
	agent := consultest.Start(t, consultest.Options{})
	appE, appC := etcdRegistry(t, e), consulRegistry(t, agent)
	target := consulRegistry(t, agent)
	m, _ := start(t, mirror.Config{Source: etcdRegistry(t, e), Target: target, Origin: "dc-etcd", Services: []string{"svc"}})
	onC := followWatch(t, appC, "svc")
	lags := measureLag(t, appE, onC, "svc", "e", 30)
	t.Logf("etcd→Consul propagation lag over %d registrations: p50 %v p99 %v", len(lags), pct(lags, 0.5), pct(lags, 0.99))
	deregister(t, appE, inst("svc", "e-0", 10000))
	waitFor(t, "e-0 deregistered at Consul", func() string {
		if n := count(appC, "svc"); n != 29 {
			return "have " + itoa(n)
		}
		return ""
	})
	lost, lingering := diff(t, appE, appC, "svc")
	if len(lost)+len(lingering) > 0 {
		t.Errorf("lost %v lingering %v", lost, lingering)
	}
	killed := time.Now()
	target.Close()
	m.Close() // leaves the records to their TTL checks
	took := waitState(t, appC, "svc", "-")
	t.Logf("Consul records of a killed mirror gone from reads after %v (check TTL %v)", time.Since(killed).Round(time.Millisecond), consulTTL)
	if took > consulTTL+5*time.Second {
		t.Errorf("records lingered %v", took)
	}
}

// TestConsulToEtcd: Consul as the origin.
func TestConsulToEtcd(t *testing.T) {
	e := etcdtest.Start(t)
	agent := consultest.Start(t, consultest.Options{})
	appE, appC := etcdRegistry(t, e), consulRegistry(t, agent)
	start(t, mirror.Config{Source: consulRegistry(t, agent), Target: etcdRegistry(t, e), Origin: "dc-consul"})
	onE := followWatch(t, appE, "svc")
	lags := measureLag(t, appC, onE, "svc", "c", 30)
	t.Logf("Consul→etcd propagation lag over %d registrations: p50 %v p99 %v", len(lags), pct(lags, 0.5), pct(lags, 0.99))
	deregister(t, appC, inst("svc", "c-3", 10003))
	waitFor(t, "c-3 deregistered at etcd", func() string {
		if n := count(appE, "svc"); n != 29 {
			return "have " + itoa(n)
		}
		return ""
	})
	lost, lingering := diff(t, appC, appE, "svc")
	if len(lost)+len(lingering) > 0 {
		t.Errorf("lost %v lingering %v", lost, lingering)
	}
}

// TestZooKeeperToEtcd: ZooKeeper as the origin.
func TestZooKeeperToEtcd(t *testing.T) {
	e := etcdtest.Start(t)
	z := zktest.Start(t)
	appE, appZ := etcdRegistry(t, e), zkRegistry(t, z)
	start(t, mirror.Config{Source: zkRegistry(t, z), Target: etcdRegistry(t, e), Origin: "dc-zk"})
	onE := followWatch(t, appE, "svc")
	lags := measureLag(t, appZ, onE, "svc", "z", 30)
	t.Logf("ZooKeeper→etcd propagation lag over %d registrations: p50 %v p99 %v", len(lags), pct(lags, 0.5), pct(lags, 0.99))
	deregister(t, appZ, inst("svc", "z-1", 10001))
	waitFor(t, "z-1 deregistered at etcd", func() string {
		if n := count(appE, "svc"); n != 29 {
			return "have " + itoa(n)
		}
		return ""
	})
	lost, lingering := diff(t, appZ, appE, "svc")
	if len(lost)+len(lingering) > 0 {
		t.Errorf("lost %v lingering %v", lost, lingering)
	}
}

// TestConsulOutages: etcd→Consul with the Consul agent (the target)
// restarted empty, then Consul→etcd with the agent (the source) restarted
// empty: the apps' and the mirror's registries re-register by themselves,
// the mirror resyncs; nothing lost or lingering. Measures resync times.
func TestConsulOutages(t *testing.T) {
	e := etcdtest.Start(t)
	agent := consultest.Start(t, consultest.Options{})
	appE, appC := etcdRegistry(t, e), consulRegistry(t, agent)
	register(t, appE, inst("svc", "e1", 1), inst("svc", "e2", 2))
	register(t, appC, inst("api", "c1", 3), inst("api", "c2", 4))
	start(t, mirror.Config{Source: etcdRegistry(t, e), Target: consulRegistry(t, agent), Origin: "dc-etcd",
		Services: []string{"svc"}, MaxBackoff: 500 * time.Millisecond})
	start(t, mirror.Config{Source: consulRegistry(t, agent), Target: etcdRegistry(t, e), Origin: "dc-consul",
		Services: []string{"api"}, MaxBackoff: 500 * time.Millisecond, StaleAfter: time.Minute})
	waitState(t, appC, "svc", "e1<dc-etcd> e2<dc-etcd>")
	waitState(t, appE, "api", "c1<dc-consul> c2<dc-consul>")

	agent.Stop()
	// While Consul is down: a change at etcd.
	register(t, appE, inst("svc", "e3", 5))
	agent.Restart(t)
	restarted := time.Now()
	// The restarted agent is empty: the apps' registries re-register on
	// their next heartbeat, the mirror's on its own, and the mirror resyncs.
	targetResync := waitState(t, appC, "svc", "e1<dc-etcd> e2<dc-etcd> e3<dc-etcd>")
	waitState(t, appC, "api", "c1<> c2<>")
	appsBack := time.Since(restarted)
	waitState(t, appE, "api", "c1<dc-consul> c2<dc-consul>")
	t.Logf("Consul agent restarted empty: etcd→Consul records back %v after the restart; the Consul apps re-registered after %v, mirrored to etcd %v after the restart",
		targetResync.Round(time.Millisecond), appsBack.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	for _, c := range []struct {
		svc      string
		src, dst registry.Registry
	}{{"svc", appE, appC}, {"api", appC, appE}} {
		waitFor(t, c.svc+": nothing lost or lingering", func() string {
			if lost, lingering := diff(t, c.src, c.dst, c.svc); len(lost)+len(lingering) > 0 {
				return fmt.Sprintf("lost %v lingering %v", lost, lingering)
			}
			return ""
		})
	}
}

// TestZooKeeperSourceOutage: the ZooKeeper origin stops and comes back;
// the mirror into etcd keeps the records meanwhile (shorter than
// StaleAfter) and resyncs a change made after the restart.
func TestZooKeeperSourceOutage(t *testing.T) {
	e := etcdtest.Start(t)
	z := zktest.Start(t)
	appE, appZ := etcdRegistry(t, e), zkRegistry(t, z)
	register(t, appZ, inst("svc", "z1", 1))
	m, _ := start(t, mirror.Config{Source: zkRegistry(t, z), Target: etcdRegistry(t, e), Origin: "dc-zk",
		MaxBackoff: 500 * time.Millisecond, StaleAfter: time.Minute})
	waitState(t, appE, "svc", "z1<dc-zk>")
	if err := z.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mirror sees the source down", func() string {
		if !m.Stats().SourceDown {
			return "source up"
		}
		return ""
	})
	if got := state(appE, "svc"); got != "z1<dc-zk>" {
		t.Errorf("records during a short source outage: %s", got)
	}
	if err := z.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The app's session comes back first (a new one if the old expired).
	waitFor(t, "the app's registration live again", func() string {
		for _, r := range appZ.Registrations() {
			if !r.Live {
				return "pending: " + r.Instance.Key()
			}
		}
		return ""
	})
	register(t, appZ, inst("svc", "z2", 2))
	took := waitState(t, appE, "svc", "z1<dc-zk> z2<dc-zk>")
	t.Logf("ZooKeeper origin back: a change made after the restart mirrored %v later (%v after the restart)", took.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	if lost, lingering := diff(t, appZ, appE, "svc"); len(lost)+len(lingering) > 0 {
		t.Errorf("lost %v lingering %v", lost, lingering)
	}
}
