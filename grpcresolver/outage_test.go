package grpcresolver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/grpcresolver"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// outageLength is how long etcd stays down in TestEtcdOutage:
// $REGCHAIN_GRPC_OUTAGE (a Go duration) or 3s.
func outageLength(t *testing.T) time.Duration {
	if s := os.Getenv("REGCHAIN_GRPC_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("REGCHAIN_GRPC_OUTAGE: %v", err)
		}
		return d
	}
	return 3 * time.Second
}

func etcdReg(t *testing.T, srv *embedetcd.Server) *etcd.Registry {
	t.Helper()
	r, err := etcd.New(etcd.Config{
		Endpoints: []string{srv.Endpoint()}, Namespace: "/grpcresolver-test",
		TTL: 2 * time.Second, Timeout: time.Second, MaxBackoff: 300 * time.Millisecond,
		Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// clientChain is what a client process builds: etcd, then the snapshot.
func clientChain(t *testing.T, srv *embedetcd.Server, snapshot string) (*chain.Chain, func()) {
	t.Helper()
	store, err := file.OpenStore(snapshot, file.Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: etcdReg(t, srv)}},
		chain.WithSnapshot(store),
		chain.WithLogger(quietLogger()),
		chain.WithProbeInterval(200*time.Millisecond),
		chain.WithProbeTimeout(500*time.Millisecond),
		chain.WithCallTimeout(time.Second),
		chain.WithFailbackAfter(time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	closeAll := func() {
		c.Close()
		store.Close()
	}
	return c, closeAll
}

func tierUp(c *chain.Chain) bool { return c.Status().Tiers[0].Up }

// With etcd killed, a client keeps calling its servers without a single
// failure, and a client created during the outage — on the running chain,
// and in a "restarted process" with only its snapshot — connects.
func TestEtcdOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	s1, s2 := startServer(t), startServer(t)
	servers := etcdReg(t, srv) // the servers' process
	register(t, servers, s1.instance("greeter", "1"), s2.instance("greeter", "2"))

	// A process that ran before the outage and left its snapshot.
	earlier, closeEarlier := clientChain(t, srv, filepath.Join(dir, "restarted.db"))
	testutil.WaitFor(t, 10*time.Second, "earlier process saw both servers", func() string {
		ins, err := earlier.GetService(context.Background(), "greeter")
		if err != nil || len(ins) != 2 {
			return "not yet"
		}
		if earlier.Status().Snapshot.Services == 0 {
			return "snapshot not saved"
		}
		return ""
	})
	closeEarlier()

	c, closeChain := clientChain(t, srv, filepath.Join(dir, "running.db"))
	defer closeChain()
	b := grpcresolver.NewBuilder(c, grpcresolver.WithLogger(quietLogger()))
	conn := dial(t, b, "regchain:///greeter")
	calls := startCaller(conn)
	defer calls.Stop()
	testutil.WaitFor(t, 10*time.Second, "calls on both servers", testutil.Until(func() bool { return calls.peerCount() == 2 }))

	outage := outageLength(t)
	srv.Stop()
	down := time.Now()
	testutil.WaitFor(t, 10*time.Second, "chain sees etcd down", testutil.Until(func() bool { return !tierUp(c) }))
	okAtDown := calls.ok.Load()

	// New clients during the outage: one more channel on the running chain,
	// and a new chain that has only its snapshot.
	late := dial(t, b, "regchain:///greeter")
	if _, err := check(context.Background(), late); err != nil {
		t.Fatalf("client created during the outage (running chain): %v", err)
	}
	restarted, closeRestarted := clientChain(t, srv, filepath.Join(dir, "restarted.db"))
	defer closeRestarted()
	fresh := dial(t, grpcresolver.NewBuilder(restarted, grpcresolver.WithLogger(quietLogger())), "regchain:///greeter")
	freshCalls := startCaller(fresh)
	defer freshCalls.Stop()
	testutil.WaitFor(t, 10*time.Second, "restarted client calls both servers", testutil.Until(func() bool { return freshCalls.peerCount() == 2 }))

	testutil.WaitFor(t, outage+time.Minute, "outage lasted", testutil.Until(func() bool {
		return time.Since(down) >= outage && calls.ok.Load() > okAtDown+50
	}))
	if tierUp(c) {
		t.Fatal("etcd tier up during the outage")
	}
	okDuring := calls.ok.Load() - okAtDown
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	outageTook := time.Since(down)
	testutil.WaitFor(t, 30*time.Second, "chain sees etcd back", testutil.Until(func() bool { return tierUp(c) && tierUp(restarted) }))
	okAtUp := calls.ok.Load()
	testutil.WaitFor(t, 10*time.Second, "calls after recovery", testutil.Until(func() bool { return calls.ok.Load() > okAtUp+50 }))

	calls.Stop()
	freshCalls.Stop()
	if f := calls.failed.Load(); f != 0 {
		t.Errorf("running client: %d failed calls (last error %v), want 0", f, calls.lastErr)
	}
	if f := freshCalls.failed.Load(); f != 0 {
		t.Errorf("restarted client: %d failed calls (last error %v), want 0", f, freshCalls.lastErr)
	}
	t.Logf("etcd down %v: running client %d calls (%d during the outage), %d failed; restarted client %d calls, %d failed",
		outageTook.Round(time.Millisecond), calls.ok.Load(), okDuring, calls.failed.Load(), freshCalls.ok.Load(), freshCalls.failed.Load())
}
