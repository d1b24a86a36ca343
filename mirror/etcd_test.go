package mirror_test

import (
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
)

const etcdTTL = 2 * time.Second

func etcdRegistry(t *testing.T, srv *embedetcd.Server) *etcd.Registry {
	t.Helper()
	r, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint()}, Namespace: "/mirror", TTL: etcdTTL,
		MaxBackoff: 500 * time.Millisecond, Timeout: 2 * time.Second, DialTimeout: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestEtcdTwoWay: two etcd clusters mirrored both ways by two mirrors; each
// side ends with its own instances plus the other's, nothing loops, and
// deletions propagate. Measures the propagation lag.
func TestEtcdTwoWay(t *testing.T) {
	a, b := etcdtest.Start(t), etcdtest.Start(t)
	appA, appB := etcdRegistry(t, a), etcdRegistry(t, b)
	start(t, mirror.Config{Source: etcdRegistry(t, a), Target: etcdRegistry(t, b), Origin: "dc-a", MaxBackoff: 500 * time.Millisecond})
	mBA, _ := start(t, mirror.Config{Source: etcdRegistry(t, b), Target: etcdRegistry(t, a), Origin: "dc-b", MaxBackoff: 500 * time.Millisecond})

	onB := followWatch(t, appB, "svc")
	lags := measureLag(t, appA, onB, "svc", "a", 50)
	onA := followWatch(t, appA, "svc")
	lagsBA := measureLag(t, appB, onA, "svc", "b", 50)
	t.Logf("etcd→etcd propagation lag over %d registrations: p50 %v p99 %v max %v; reverse p50 %v p99 %v",
		len(lags), pct(lags, 0.5), pct(lags, 0.99), lags[len(lags)-1], pct(lagsBA, 0.5), pct(lagsBA, 0.99))

	// No loop: each side holds 100 records, 50 of them mirrored, and the
	// mirrors settle (no write without a change).
	waitCount := func(r registry.Registry, want int) {
		t.Helper()
		waitFor(t, "100 records", func() string {
			if n := count(r, "svc"); n != want {
				return "have " + itoa(n)
			}
			return ""
		})
	}
	waitCount(appA, 100)
	waitCount(appB, 100)
	before := mBA.Stats().Registered
	deregister(t, appA, inst("svc", "a-0", 10000))
	waitCount(appB, 99)
	waitCount(appA, 99)
	if after := mBA.Stats().Registered; after != before {
		t.Errorf("the B→A mirror wrote %d records after a change on A: a loop", after-before)
	}
	lost, lingering := diff(t, appA, appB, "svc")
	if len(lost)+len(lingering) > 0 {
		t.Errorf("A and B differ: lost %v lingering %v", lost, lingering)
	}
}

// TestEtcdMirrorKilled: the mirror's records live on its own leases; when
// it dies they expire after the TTL.
func TestEtcdMirrorKilled(t *testing.T) {
	a, b := etcdtest.Start(t), etcdtest.Start(t)
	appA, appB := etcdRegistry(t, a), etcdRegistry(t, b)
	register(t, appA, inst("svc", "x", 1), inst("svc", "y", 2))
	target := etcdRegistry(t, b)
	m, _ := start(t, mirror.Config{Source: etcdRegistry(t, a), Target: target, Origin: "dc-a"})
	waitState(t, appB, "svc", "x<dc-a> y<dc-a>")
	// A crash: the target connection (and its keepalives) goes first, so
	// the mirror can deregister nothing.
	killed := time.Now()
	target.Close()
	m.Close() // leaves the records to their leases
	took := waitState(t, appB, "svc", "-")
	t.Logf("records of a killed mirror gone after %v (lease TTL %v)", time.Since(killed).Round(time.Millisecond), etcdTTL)
	if took > etcdTTL+5*time.Second { // the leader revokes expired leases every 500ms; slack for a loaded machine
		t.Errorf("records lingered %v, bound TTL %v + 5s", took, etcdTTL)
	}
	lost, lingering := diff(t, appA, appB, "svc")
	if len(lingering) > 0 || len(lost) != 2 {
		t.Errorf("after expiry: lost %v lingering %v", lost, lingering)
	}
}

// TestEtcdOutages: the target down while the source changes, then the
// source down (shorter than StaleAfter, then longer); the mirror resyncs
// after each. Measures the resync times; nothing lost or lingering.
func TestEtcdOutages(t *testing.T) {
	a, b := etcdtest.Start(t), etcdtest.Start(t)
	appA, appB := etcdRegistry(t, a), etcdRegistry(t, b)
	register(t, appA, inst("svc", "x", 1), inst("svc", "y", 2))
	const stale = 3 * time.Second
	m, _ := start(t, mirror.Config{Source: etcdRegistry(t, a), Target: etcdRegistry(t, b), Origin: "dc-a",
		StaleAfter: stale, MaxBackoff: 500 * time.Millisecond})
	waitState(t, appB, "svc", "x<dc-a> y<dc-a>")

	// Target outage: changes at the source meanwhile.
	b.Stop()
	register(t, appA, inst("svc", "z", 3))
	deregister(t, appA, inst("svc", "x", 1))
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	targetResync := waitState(t, appB, "svc", "y<dc-a> z<dc-a>")

	// Source outage shorter than StaleAfter: records stay; then a change
	// right after the source is back.
	a.Stop()
	waitFor(t, "mirror sees the source down", func() string {
		if !m.Stats().SourceDown {
			return "source up"
		}
		return ""
	})
	if got := state(appB, "svc"); got != "y<dc-a> z<dc-a>" {
		t.Errorf("records during a short source outage: %s", got)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	register(t, appA, inst("svc", "w", 4))
	sourceResync := waitState(t, appB, "svc", "w<dc-a> y<dc-a> z<dc-a>")

	// Source outage longer than StaleAfter: records withdrawn, then back.
	a.Stop()
	down := time.Now()
	waitState(t, appB, "svc", "-")
	withdrawn := time.Since(down)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	staleResync := waitState(t, appB, "svc", "w<dc-a> y<dc-a> z<dc-a>")
	t.Logf("resync after target outage %v; after short source outage %v; stale source withdrawn after %v (StaleAfter %v), resynced %v after it came back",
		targetResync.Round(time.Millisecond), sourceResync.Round(time.Millisecond), withdrawn.Round(time.Millisecond), stale, staleResync.Round(time.Millisecond))
	lost, lingering := diff(t, appA, appB, "svc")
	if len(lost)+len(lingering) > 0 {
		t.Errorf("lost %v lingering %v", lost, lingering)
	}
}

func count(r registry.Registry, service string) int {
	s := state(r, service)
	if s == "-" || len(s) > 6 && s[:6] == "error:" {
		return 0
	}
	n := 1
	for _, c := range s {
		if c == ' ' {
			n++
		}
	}
	return n
}
