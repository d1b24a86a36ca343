package zk_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/registry"
)

// BenchmarkOutage stops the ZooKeeper server for 6 s or 20 s and starts it
// again (same data: a restart, not a new history); each iteration is one
// outage. It reports, from the moment the restarted server grants a fresh
// client a session: how long until the registration is held by the server
// and the Registry has its session and reports it Live ("ms-back"), and
// the longest time the node was absent after the restart ("ms-absent";
// ZooKeeper restores the sessions from its snapshot and restarts their
// timeout, so a client back within its session timeout keeps its session
// and its node: it must never be deleted and re-created). Run with
// -benchtime=5x.
func BenchmarkOutage(b *testing.B) {
	for _, outage := range []time.Duration{6 * time.Second, 20 * time.Second} {
		b.Run(outage.String(), func(b *testing.B) { benchOutage(b, outage) })
	}
}

func benchOutage(b *testing.B, outage time.Duration) {
	srv := zktest.Start(b)
	root := uniqueRoot(b)
	// The default 10 s session: shorter than the 20 s outage, longer than 6 s.
	r := newRegistry(b, srv, zk.Config{Namespace: root, SessionTimeout: zk.DefaultSessionTimeout})
	in := instance("outage", "o1", 7700)
	register(b, r, in)
	want, _ := registry.Marshal(in)
	path := nodePath(root, in)
	var backs, absents []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := srv.Stop(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(outage) // the outage itself
		if err := srv.Resume(); err != nil {
			b.Fatal(err)
		}
		up := time.Now()
		o := srv.Connect(b, 2*time.Second)
		var (
			back, absent, absentFrom time.Duration
			wasAbsent                bool
		)
		// Sample until back, then 2 s more for a late delete.
		for deadline := up.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			now := time.Since(up)
			held := nodeState(o, path, want, nil) == ""
			switch {
			case !held && !wasAbsent:
				wasAbsent, absentFrom = true, now
			case held && wasAbsent:
				wasAbsent = false
				absent = max(absent, now-absentFrom)
			}
			if back == 0 && held && r.Ping(ctxT(b, time.Second)) == nil && liveAll(r) {
				back = max(now, time.Nanosecond)
			}
			if back > 0 && now > back+2*time.Second {
				break
			}
		}
		if back == 0 || wasAbsent {
			b.Fatalf("outage %d: registration not back within 30 s of the server", i)
		}
		o.Close()
		backs, absents = append(backs, back), append(absents, absent)
		b.Logf("outage %v #%d: back %v after the server granted sessions again; absent for %v", outage, i+1, back.Round(time.Millisecond), absent.Round(time.Millisecond))
	}
	b.StopTimer()
	report(b, backs, "ms-back")
	report(b, absents, "ms-absent")
}

// liveAll reports whether every registration is Live.
func liveAll(r *zk.Registry) bool {
	for _, s := range r.Registrations() {
		if !s.Live {
			return false
		}
	}
	return true
}

// report reports the median and maximum of ds in milliseconds.
func report(b *testing.B, ds []time.Duration, unit string) {
	if len(ds) == 0 {
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, unit+"-median")
	b.ReportMetric(float64(s[len(s)-1].Microseconds())/1000, unit+"-max")
	b.Logf("%s: %v", unit, fmt.Sprint(ds))
}
