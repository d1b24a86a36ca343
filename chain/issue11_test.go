package chain_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// The tests of this file re-measure the failures issue 11 reported; each
// logs its numbers.

// TestRegistrationsAgreeWithAdapter: with the only tier down, the chain
// reports what the etcd adapter underneath reports: not Live, the same
// attempts and error (issue 11, item 4).
func TestRegistrationsAgreeWithAdapter(t *testing.T) {
	srv := etcdtest.Start(t)
	e := etcdTier(t, srv, namespace())
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: e}}, realOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(context.Background(), inst("svc", "a1", 9001)); err != nil {
		t.Fatal(err)
	}
	if regs := c.Registrations(); len(regs) != 1 || !regs[0].Live {
		t.Fatalf("Registrations before the outage = %+v, want live", regs)
	}
	stopAsync(t, srv)
	var got, under registry.RegistrationState
	testutil.WaitFor(t, 30*time.Second, "the lease lost and both reports agreeing", func() string {
		u, cs := e.Registrations(), c.Registrations()
		if len(u) != 1 || len(cs) != 1 {
			return fmt.Sprintf("adapter %d, chain %d registrations", len(u), len(cs))
		}
		under, got = u[0], cs[0]
		if under.Live || under.Attempts < 2 {
			return fmt.Sprintf("adapter: live %v, attempts %d", under.Live, under.Attempts)
		}
		if got.Live != under.Live || got.Attempts != under.Attempts || fmt.Sprint(got.LastError) != fmt.Sprint(under.LastError) {
			return fmt.Sprintf("chain %v/%d/%v, adapter %v/%d/%v", got.Live, got.Attempts, got.LastError, under.Live, under.Attempts, under.LastError)
		}
		return ""
	})
	t.Logf("tier down: chain Live=%v Attempts=%d LastError=%q; adapter Live=%v Attempts=%d LastError=%q",
		got.Live, got.Attempts, got.LastError, under.Live, under.Attempts, under.LastError)
	if got.Since.IsZero() {
		t.Error("Since is zero")
	}
}

// TestUnknownNamesForgotten: reads of names that exist nowhere do not
// leave services watched: they are answered from the negative cache for
// a moment, then forgotten (issue 11, item 5).
func TestUnknownNamesForgotten(t *testing.T) {
	e := etcdTier(t, shared.Server(t), namespace())
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: e}}, realOpts(chain.WithNegativeTTL(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	mustGet(t, c, "warmup") // tier watch machinery started
	testutil.WaitFor(t, 10*time.Second, "warmup forgotten", func() string {
		if n := len(c.Status().Services); n != 0 {
			return fmt.Sprintf("%d services", n)
		}
		return ""
	})
	before := runtime.NumGoroutine()
	for i := range 1000 {
		if _, err := c.GetService(ctx, fmt.Sprintf("nosuch-%d", i)); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("GetService(nosuch-%d) = %v, want ErrNotFound", i, err)
		}
	}
	peakSvcs, peakG := len(c.Status().Services), runtime.NumGoroutine()
	testutil.WaitFor(t, 20*time.Second, "the absent names forgotten", func() string {
		if n := len(c.Status().Services); n != 0 {
			return fmt.Sprintf("%d services still kept", n)
		}
		return ""
	})
	testutil.WaitFor(t, 20*time.Second, "goroutines back", func() string {
		if g := runtime.NumGoroutine(); g > before+5 {
			return fmt.Sprintf("%d goroutines, %d before", g, before)
		}
		return ""
	})
	t.Logf("1,000 unknown names: %d services and %+d goroutines right after, 0 services and %+d goroutines after the negative TTL (1s)",
		peakSvcs, peakG-before, runtime.NumGoroutine()-before)
}

// hanging is a tier that answers probes but whose reads and watches hang
// until their ctx ends: a tier that died a moment ago, its circuit not
// open yet.
type hanging struct{ *registrytest.Memory }

func (h hanging) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (h hanging) ListServices(ctx context.Context) ([]string, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (h hanging) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	return registry.NewFeed(ctx, nil), nil
}

// TestFirstReadHedges: the first read of an unwatched service, its first
// tier hanging, answers from the next tier after the hedge delay, not
// after the call timeout; and the slow read does not count against the
// tier's health (issue 11, item 6).
func TestFirstReadHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m2 := registrytest.NewMemoryNamed("m2")
		m2.Register(ctx, inst("svc", "a1", 9001))
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: hanging{registrytest.NewMemoryNamed("m1")}}, {Name: "tier2", Registry: m2}},
			chain.WithProbeInterval(time.Hour))
		defer c.Close()
		synctest.Wait()
		start := time.Now()
		got, err := c.GetService(ctx, "svc")
		took := time.Since(start)
		if err != nil || len(got) != 1 {
			t.Fatalf("GetService = %v, %v", ids(got), err)
		}
		if took != 100*time.Millisecond {
			t.Errorf("first read took %v, want the hedge delay, 100ms", took)
		}
		start = time.Now()
		names, err := c.ListServices(ctx)
		if took := time.Since(start); err != nil || len(names) != 1 || took != 100*time.Millisecond {
			t.Errorf("ListServices = %v, %v after %v; want [svc] after the hedge delay", names, err, took)
		}
		time.Sleep(5 * time.Second) // the hung read times out
		synctest.Wait()
		if ts := c.Status().Tiers[0]; !ts.Up || ts.Failures != 0 {
			t.Errorf("tier1 after a slow read: up %v, failures %d; a slow read is no failure", ts.Up, ts.Failures)
		}
		t.Logf("first read with tier 1 hanging: %v (hedge delay 100ms, call timeout 2s)", took)
	})
}

// TestFastRegistryRestartHeld: a registry that loses every registration
// of a service and gets them back from its providers within a second (a
// fast restart, a wipe) never shows readers an empty list (issue 11,
// item 7).
func TestFastRegistryRestartHeld(t *testing.T) {
	srv := shared.Server(t)
	ns := namespace()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	put := func() {
		for i := range 5 {
			kratosRegister(t, cli, ns, kratosInstance{ID: fmt.Sprintf("k%d", i), Name: "app", Version: "v1",
				Endpoints: []string{fmt.Sprintf("grpc://10.2.0.%d:9000", i)}})
		}
	}
	put()
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: etcdTier(t, srv, ns)}},
		append(realOpts(), chain.WithGuard(chain.Guard{}))...) // the default guard
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mustGet(t, c, "app", "k0", "k1", "k2", "k3", "k4")
	wl := startWatchLog(t, c, "app")
	wl.until(t, 10*time.Second, "etcd", "k0", "k1", "k2", "k3", "k4")
	rs := startCountingReader(c, "app")
	ctx := context.Background()
	if _, err := cli.Delete(ctx, ns+"/app/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	put() // the providers come back
	testutil.WaitFor(t, 10*time.Second, "the hold discarded", func() string {
		if ss := serviceStatus(c, "app"); ss.Held {
			return "still held"
		}
		return ""
	})
	rs.end()
	var empties int
	for _, u := range wl.all() {
		if len(u.Instances) == 0 {
			empties++
		}
	}
	g := c.Status().Guard
	t.Logf("registry wiped and refilled after 0.6 s: %d reads, %d empty, %d failed; %d empty watch updates; drops held %d, discarded %d",
		rs.reads.Load(), rs.empty.Load(), rs.failed.Load(), empties, g.Held, g.Discarded)
	if g.Held == 0 {
		t.Error("the drop was never held")
	}
	if rs.empty.Load() != 0 || empties != 0 {
		t.Errorf("%d empty reads and %d empty watch updates, want none", rs.empty.Load(), empties)
	}
}

// TestInvalidWritesNothingEtcdConsul: 100 KiB of metadata on a chain etcd →
// Consul: Consul's limits refuse it, and nothing is written to etcd
// either (issue 11, item 8).
func TestInvalidWritesNothingEtcdConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{})
	cons, err := consul.New(consul.Config{Address: agent.Addr, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close() })
	e := etcdTier(t, shared.Server(t), namespace())
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: e}, {Name: "consul", Registry: cons}}, realOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	big := inst("big", "b1", 9001)
	for i := range 100 {
		big.Metadata[fmt.Sprintf("k%03d", i)] = strings.Repeat("x", 1024)
	}
	err = c.Register(context.Background(), big)
	if !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("Register(100 KiB metadata) = %v, want ErrInvalid", err)
	}
	// Nothing is pending either, so nothing can land later: the checks
	// below need no wait.
	if regs := c.Registrations(); len(regs) != 0 {
		t.Fatalf("Registrations = %+v, want none", regs)
	}
	if got := tierIDs(t, e, "big"); len(got) != 0 {
		t.Errorf("etcd holds %v after ErrInvalid, want nothing", got)
	}
	if got := tierIDs(t, cons, "big"); len(got) != 0 {
		t.Errorf("consul holds %v after ErrInvalid, want nothing", got)
	}
	t.Logf("Register(100 KiB metadata) = %v", err)
}
