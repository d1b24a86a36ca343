package etcd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// absence polls key through cli (every 2 ms) and adds up the time it was
// missing, until stop.
type absence struct {
	mu     sync.Mutex
	absent time.Duration
	gaps   int
	stop   chan struct{}
	done   chan struct{}
}

func watchAbsence(cli *clientv3.Client, key string) *absence {
	a := &absence{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		var since time.Time // when the key was last seen missing, zero if present
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := cli.Get(ctx, key, clientv3.WithCountOnly())
			cancel()
			now := time.Now()
			if err == nil {
				a.mu.Lock()
				switch {
				case resp.Count == 0 && since.IsZero():
					since = now
					a.gaps++
				case resp.Count > 0 && !since.IsZero():
					a.absent += now.Sub(since)
					since = time.Time{}
				}
				a.mu.Unlock()
			}
			select {
			case <-a.stop:
				if !since.IsZero() {
					a.mu.Lock()
					a.absent += time.Since(since)
					a.mu.Unlock()
				}
				return
			case <-tick.C:
			}
		}
	}()
	return a
}

// end stops polling and returns the total absence and the number of gaps.
func (a *absence) end() (time.Duration, int) {
	close(a.stop)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.absent, a.gaps
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// leaseOf returns the lease the registration of key holds, 0 if none.
func leaseOf(r *Registry, key string) clientv3.LeaseID {
	r.mu.Lock()
	g := r.regs[key]
	r.mu.Unlock()
	if g == nil {
		return 0
	}
	return g.currentLease()
}

// outageRun stops srv for outage (0: until the registry's keepalive gave
// up on the lease, a TTL), starts it again and measures how long
// after Start the registration of r is Live and held again, and how long
// its key was missing from Start until 2 TTLs + 1 s later (when a lease
// etcd kept but the registry did not take back would have expired).
func outageRun(tb testing.TB, srv *embedetcd.Server, r *Registry, name, id string, outage time.Duration) (back, absent time.Duration, gaps int) {
	tb.Helper()
	ctx := ctxT(tb, outage+time.Minute)
	key := r.rec.key(name, id)
	srv.Stop()
	if outage > 0 {
		time.Sleep(outage) // the outage itself, not a wait for a condition
	} else {
		// As long as it takes the client to give up on the lease.
		testutil.WaitFor(tb, 30*time.Second, "registration seen as lost", func() string {
			if s := regState(r, name, id); s == nil || s.Live {
				return fmt.Sprintf("state %+v", s)
			}
			return ""
		})
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	up := time.Now()
	// A client of its own: one that lived through the outage reconnects
	// on its own (slow) schedule and would see nothing meanwhile.
	cli := newClient(tb, srv.Endpoint())
	a := watchAbsence(cli, key)
	testutil.WaitFor(tb, 30*time.Second, "registration back after the outage", func() string {
		if s := regState(r, name, id); s == nil || !s.Live {
			return fmt.Sprintf("state %+v", s)
		}
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return err.Error()
		}
		if len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != leaseOf(r, key) {
			return "key not held on the registration's lease"
		}
		return ""
	})
	back = time.Since(up)
	// Let a lease nobody keeps alive run out, if that is what happened.
	settle := time.NewTimer(2*time.Duration(r.ttl)*time.Second + time.Second)
	<-settle.C
	absent, gaps = a.end()
	return back, absent, gaps
}

// BenchmarkOutage (issue 12): TTL 2 s, etcd stopped for 6 s and 20 s, then
// started on the same data (it keeps the leases). Reported per outage: the
// time from etcd up until the registration is Live and held on its lease
// again, and how long the key was missing. Run with -benchtime=5x.
func BenchmarkOutage(b *testing.B) {
	for _, outage := range []time.Duration{6 * time.Second, 20 * time.Second} {
		b.Run(fmt.Sprintf("outage=%v", outage), func(b *testing.B) {
			srv := etcdtest.Start(b)
			cfg := testConfig(b, srv.Endpoint())
			cfg.Logger = quietLogger()
			cfg.MaxBackoff = DefaultMaxBackoff
			cfg.Timeout = DefaultTimeout
			r := newRegistry(b, cfg)
			in := instance("outage", "a", 9000)
			if err := r.Register(ctxT(b, time.Minute), in); err != nil {
				b.Fatal(err)
			}
			var sumBack, maxBack, sumAbsent, maxAbsent time.Duration
			for i := 0; i < b.N; i++ {
				back, absent, gaps := outageRun(b, srv, r, in.Name, in.ID, outage)
				b.Logf("run %d: outage %v: registration back %v after etcd was up; key absent %v in %d gaps", i+1, outage, back.Round(time.Millisecond), absent.Round(time.Millisecond), gaps)
				sumBack += back
				sumAbsent += absent
				maxBack = max(maxBack, back)
				maxAbsent = max(maxAbsent, absent)
			}
			b.ReportMetric(float64(sumBack.Milliseconds())/float64(b.N), "back-ms")
			b.ReportMetric(float64(maxBack.Milliseconds()), "max-back-ms")
			b.ReportMetric(float64(sumAbsent.Milliseconds())/float64(b.N), "absent-ms")
			b.ReportMetric(float64(maxAbsent.Milliseconds()), "max-absent-ms")
		})
	}
}

// TestOutageKeepsRecord: etcd down until the registry gave up on its lease
// and back on the same data (its leases kept): the registration is back
// within about a second and its key is never missing.
func TestOutageKeepsRecord(t *testing.T) {
	srv := etcdtest.Start(t)
	cfg := testConfig(t, srv.Endpoint())
	cfg.MaxBackoff = DefaultMaxBackoff // a backoff timer would take seconds
	r := newRegistry(t, cfg)
	in := instance("outage", "a", 9000)
	if err := r.Register(ctxT(t, time.Minute), in); err != nil {
		t.Fatal(err)
	}
	back, absent, gaps := outageRun(t, srv, r, in.Name, in.ID, 0)
	t.Logf("MEASURE outage > TTL 2s: registration back %v after etcd was up; key absent %v in %d gaps", back, absent, gaps)
	if gaps > 0 {
		t.Errorf("key absent %v in %d gaps although etcd kept the lease", absent, gaps)
	}
	if back > 2*time.Second {
		t.Errorf("registration back %v after etcd was up; want about a second at most", back)
	}
}
