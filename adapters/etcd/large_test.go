package etcd

import (
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// TestLargeService (issue 14): one service with 20,000 instances, read,
// watched and mass-deleted through a chain over the etcd adapter (and, for
// comparison, the adapter's own watcher). It logs the first answer, one
// change and the mass delete; each is bounded.
func TestLargeService(t *testing.T) {
	const n = 20000
	srv := etcdtest.Start(t)
	cli := newClient(t, srv.Endpoint())
	ns := newNamespace()
	svc := "big"
	putMany(t, cli, ns, n, func(int) string { return svc })
	ctx := ctxT(t, 5*time.Minute)
	// Grace 1s: the chain holds a mass removal that long before re-reading.
	// The adapter's default request timeout (5s): reading 20,000 records
	// takes longer than the 1s of the other tests under -race.
	ch := newChainOnEtcd(t, srv.Endpoint(), ns, DefaultTimeout, chain.WithGuard(chain.Guard{Window: time.Second}), chain.WithCallTimeout(DefaultTimeout))

	start := time.Now()
	got, err := ch.c.GetService(ctx, svc)
	if err != nil || len(got) != n {
		t.Fatalf("chain GetService = %d instances, %v; want %d", len(got), err, n)
	}
	first := time.Since(start)
	start = time.Now()

	cw := followWatcher(t, ch.c, svc)
	aw := followWatcher(t, ch.tier, svc)
	count := func(l *lastState) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		if u := l.last[svc]; u != nil {
			return len(u.Instances)
		}
		return -1
	}
	// wait measures from start, taken before the change: a watcher may
	// deliver before the writing call returns.
	wait := func(start time.Time, what string, want int) (chainAt, adapterAt time.Duration) {
		t.Helper()
		testutil.WaitFor(t, 60*time.Second, what, func() string {
			c, a := count(cw), count(aw)
			if a == want && adapterAt == 0 {
				adapterAt = time.Since(start)
			}
			if c == want && chainAt == 0 {
				chainAt = time.Since(start)
			}
			if c != want || a != want {
				return fmt.Sprintf("chain watcher %d, adapter watcher %d instances; want %d", c, a, want)
			}
			return ""
		})
		return chainAt, adapterAt
	}
	cFirst, aFirst := wait(start, "first watch states", n)
	t.Logf("MEASURE %d instances: chain GetService first answer %v; first Next: chain %v, adapter %v", n, first.Round(time.Millisecond), cFirst.Round(time.Millisecond), aFirst.Round(time.Millisecond))

	in := instance(svc, "zz-new", 1)
	start = time.Now()
	if _, err := cli.Put(ctx, ns+"/"+svc+"/"+in.ID, mustMarshal(t, in)); err != nil {
		t.Fatal(err)
	}
	cOne, aOne := wait(start, "one change", n+1)
	t.Logf("MEASURE %d instances: one change delivered: chain %v, adapter %v", n, cOne.Round(time.Millisecond), aOne.Round(time.Millisecond))

	start = time.Now()
	if _, err := cli.Delete(ctx, ns+"/"+svc+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	cDel, aDel := wait(start, "mass delete", 0)
	t.Logf("MEASURE %d instances: mass delete delivered: chain %v (guard grace 1s), adapter %v", n, cDel.Round(time.Millisecond), aDel.Round(time.Millisecond))
}
