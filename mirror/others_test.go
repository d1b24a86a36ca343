package mirror_test

import (
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/consultest"
	"github.com/regchain/regchain/internal/zktest"
	"github.com/regchain/regchain/mirror"
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
	_, stop := start(t, mirror.Config{Source: etcdRegistry(t, e), Target: target, Origin: "dc-etcd", Services: []string{"svc"}})
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
	stop()
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
