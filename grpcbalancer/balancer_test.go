package grpcbalancer_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/regchain/regchain/locality"
)

// The client's place and three others: its zone, the rest of its region,
// another region.
var (
	zoneA   = locality.Locality{Zone: "a", Region: "r1"}
	zoneB   = locality.Locality{Zone: "b", Region: "r1"}
	regionC = locality.Locality{Zone: "c", Region: "r2"}
)

// retry is the method config grpcresolver sets by default: calls that end
// UNAVAILABLE are tried again.
const retry = `"methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.05s",` +
	`"maxBackoff":"0.1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]`

// sc is a service config selecting the policy with lbConfig, and retries.
func sc(lbConfig string) string {
	return `{"loadBalancingConfig":[{"regchain_locality":` + lbConfig + `}],` + retry + `}`
}

const self = `"zone":"a","region":"r1"`

// Calls go to the client's zone; when its server dies, to the region at
// once; when that dies too, to the other region; back to the zone the
// moment it is up again. Calls run all along from four goroutines: none
// fails.
func TestLevelFailoverAndBack(t *testing.T) {
	z, r, x := startServer(t), startServer(t), startServer(t)
	conn, _ := dial(t, sc(`{`+self+`}`),
		endpoint(x.addr, regionC), endpoint(r.addr, zoneB), endpoint(z.addr, zoneA))
	l := startLoop(conn, 4)
	defer l.Stop()
	l.onlyOn(t, z.addr)
	// Each step: from the change to the first call answered by the next
	// level (measured, not asserted).
	var took []time.Duration
	step := func(change func(), next string) {
		l.reset()
		t0 := time.Now()
		change()
		l.onlyOn(t, next)
		took = append(took, l.firstAfter(next, t0))
		l.settled(t, t0)
	}
	step(z.Stop, r.addr)
	step(r.Stop, x.addr)
	step(z.Restart, z.addr)
	failed, err := l.Stop()
	if failed != 0 {
		t.Errorf("%d calls failed across the failovers (last: %v), want 0", failed, err)
	}
	t.Logf("%d calls, %d failed, %d lost after the server had answered (committed: no retry may run them again); "+
		"first call on the next level after the kill: zone→region %v, region→other region %v; back on the restarted zone after %v (reconnect backoff 20-200ms)",
		l.ok.Load()+failed+l.committed.Load(), failed, l.committed.Load(),
		took[0].Round(10*time.Microsecond), took[1].Round(10*time.Microsecond), took[2].Round(time.Millisecond))
}

// A nearer level whose endpoints do not connect is skipped from the first
// call on: a refused port (TRANSIENT_FAILURE at once) and a port that
// accepts but never speaks HTTP/2 (CONNECTING for the whole connect
// timeout, like a datacenter whose traffic is dropped).
func TestNearestLevelNotReadySkipped(t *testing.T) {
	refused := func(t *testing.T) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		lis.Close()
		return addr
	}
	silent := func(t *testing.T) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var conns []net.Conn
		go func() {
			defer close(done)
			for {
				c, err := lis.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c) // held open, never answered
			}
		}()
		t.Cleanup(func() {
			lis.Close()
			<-done
			for _, c := range conns {
				c.Close()
			}
		})
		return lis.Addr().String()
	}
	for name, dead := range map[string]func(*testing.T) string{"refused": refused, "silent": silent} {
		t.Run(name, func(t *testing.T) {
			r := startServer(t)
			conn, _ := dial(t, sc(`{`+self+`}`), endpoint(dead(t), zoneA), endpoint(r.addr, zoneB))
			// Each call has 5 s: waiting for the zone would fail them
			// (its connect timeout is 20 s).
			if why := only(conn, 20, r.addr); why != "" {
				t.Error(why)
			}
		})
	}
}

// Client-side health checking: a zone server whose health service says
// NOT_SERVING is not READY, so its level is left; SERVING brings it back.
func TestHealthCheckedLevels(t *testing.T) {
	z, r := startServer(t), startServer(t)
	conn, _ := dial(t, `{"loadBalancingConfig":[{"regchain_locality":{`+self+`}}],"healthCheckConfig":{"serviceName":""},`+retry+`}`,
		endpoint(z.addr, zoneA), endpoint(r.addr, zoneB))
	waitFor(t, "calls on the zone", func() string { return only(conn, 10, z.addr) })
	z.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "calls on the region", func() string { return only(conn, 10, r.addr) })
	z.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "calls on the zone again", func() string { return only(conn, 10, z.addr) })
}

// An endpoint whose calls keep failing is ejected after the consecutive
// failure limit; its level's other endpoint takes every call; it receives
// none while ejected.
func TestEjectConsecutiveFailures(t *testing.T) {
	good, bad, r := startServer(t), startServer(t), startServer(t)
	bad.mode.Store(modeFail)
	conn, _ := dial(t, sc(`{`+self+`,"outlierDetection":{"consecutiveFailures":3,"baseEjectionTime":"1h"}}`),
		endpoint(good.addr, zoneA), endpoint(bad.addr, zoneA), endpoint(r.addr, zoneB))
	waitFor(t, "the failing endpoint ejected", func() string { return only(conn, 20, good.addr) })
	if n := bad.calls.Load(); n < 3 {
		t.Errorf("the failing endpoint had %d calls before its ejection, want at least 3", n)
	}
	before := bad.calls.Load()
	if why := only(conn, 50, good.addr); why != "" {
		t.Error(why)
	}
	if n := bad.calls.Load(); n != before {
		t.Errorf("the ejected endpoint received %d calls", n-before)
	}
	t.Logf("the failing endpoint was ejected after %d calls (limit 3)", before)
}

// An ejected endpoint is re-admitted when its ejection time has run out.
func TestEjectionEndsAndReadmits(t *testing.T) {
	good, bad := startServer(t), startServer(t)
	bad.mode.Store(modeFail)
	conn, _ := dial(t, sc(`{`+self+`,"outlierDetection":{"consecutiveFailures":3,"baseEjectionTime":"200ms"}}`),
		endpoint(good.addr, zoneA), endpoint(bad.addr, zoneA))
	waitFor(t, "the failing endpoint ejected", func() string { return only(conn, 20, good.addr) })
	bad.mode.Store(modeOK)
	waitFor(t, "the endpoint back in rotation", func() string {
		peers, errs := calls(conn, 10)
		if peers[bad.addr] == 0 || len(errs) > 0 {
			return fmt.Sprintf("peers %v errors %v", peers, errs)
		}
		return ""
	})
}

// Failure rate: an endpoint that fails every other call never reaches the
// consecutive limit but is ejected for its rate at the end of an interval.
func TestEjectFailureRate(t *testing.T) {
	good, flaky := startServer(t), startServer(t)
	flaky.mode.Store(modeAlternate)
	conn, _ := dial(t, sc(`{`+self+`,"outlierDetection":{"consecutiveFailures":100,"failurePercentage":40,`+
		`"requestVolume":4,"interval":"50ms","baseEjectionTime":"1h"}}`),
		endpoint(good.addr, zoneA), endpoint(flaky.addr, zoneA))
	waitFor(t, "the flaky endpoint ejected", func() string { return only(conn, 20, good.addr) })
}

// Max ejection percent: of two failing endpoints only one is ejected
// (50 %); the other keeps receiving calls.
func TestMaxEjectionPercent(t *testing.T) {
	s1, s2 := startServer(t), startServer(t)
	s1.mode.Store(modeFail)
	s2.mode.Store(modeFail)
	conn, _ := dial(t, sc(`{`+self+`,"outlierDetection":{"consecutiveFailures":3,"baseEjectionTime":"1h","maxEjectionPercent":50}}`),
		endpoint(s1.addr, zoneA), endpoint(s2.addr, zoneA))
	waitFor(t, "one endpoint ejected", func() string {
		a, b := s1.calls.Load(), s2.calls.Load()
		calls(conn, 10)
		da, db := s1.calls.Load()-a, s2.calls.Load()-b
		if (da == 0) == (db == 0) {
			return fmt.Sprintf("calls %d and %d", da, db)
		}
		return ""
	})
	// The one left in rotation stays: ejecting it would pass 50 %.
	a, b := s1.calls.Load(), s2.calls.Load()
	_, errs := calls(conn, 20)
	if errs[codes.Internal] != 20 || (s1.calls.Load()-a)+(s2.calls.Load()-b) != 20 {
		t.Errorf("errors %v, want the server's 20 INTERNAL: calls still reach the endpoint left", errs)
	}
}

// When every READY endpoint is ejected, calls still go to them: an
// ejection never leaves the channel with nothing to call.
func TestOnlyEjectedStillServe(t *testing.T) {
	s := startServer(t)
	s.mode.Store(modeFail)
	conn, _ := dial(t, sc(`{`+self+`,"outlierDetection":{"consecutiveFailures":3,"baseEjectionTime":"1h","maxEjectionPercent":100}}`),
		endpoint(s.addr, zoneA))
	_, errs := calls(conn, 30)
	if errs[codes.Internal] != 30 || s.calls.Load() != 30 {
		t.Errorf("errors %v and %d calls on the server, want its 30 INTERNAL", errs, s.calls.Load())
	}
	s.mode.Store(modeOK)
	if why := only(conn, 10, s.addr); why != "" {
		t.Error(why)
	}
}

// Application errors (NOT_FOUND here) say nothing of the endpoint: no
// ejection however many there are.
func TestApplicationErrorsDoNotEject(t *testing.T) {
	s1, s2 := startServer(t), startServer(t)
	s2.code = codes.NotFound
	s2.mode.Store(modeFail)
	conn, _ := dial(t, sc(`{`+self+`,"outlierDetection":{"consecutiveFailures":2,"baseEjectionTime":"1h"}}`),
		endpoint(s1.addr, zoneA), endpoint(s2.addr, zoneA))
	waitFor(t, "both endpoints READY", func() string {
		if peers, _ := calls(conn, 10); peers[s1.addr] == 0 {
			return fmt.Sprintf("peers %v", peers)
		}
		if s2.calls.Load() == 0 {
			return "no call on s2"
		}
		return ""
	})
	before := s2.calls.Load()
	calls(conn, 40)
	if n := s2.calls.Load() - before; n < 15 {
		t.Errorf("the endpoint answering NOT_FOUND got %d of 40 calls: ejected?", n)
	}
}

// An endpoint ejected for its failures is re-admitted at once when its
// connection comes back READY after being down (its server restarted),
// long before its ejection time ends.
func TestReconnectReadmits(t *testing.T) {
	z, r := startServer(t), startServer(t)
	z.mode.Store(modeFail)
	conn, _ := dial(t, sc(`{`+self+`,"outlierDetection":{"consecutiveFailures":3,"baseEjectionTime":"1h"}}`),
		endpoint(z.addr, zoneA), endpoint(r.addr, zoneB))
	waitFor(t, "the failing zone endpoint ejected", func() string { return only(conn, 10, r.addr) })
	z.Stop()
	z.mode.Store(modeOK)
	z.Restart()
	waitFor(t, "calls back on the restarted zone endpoint", func() string { return only(conn, 10, z.addr) })
}
