package chain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// TestConcurrentWritesFinalState: many goroutines register and deregister
// the same instances concurrently, with writes of varying latency and one
// tier going down and up meanwhile; once things settle, every tier holds
// exactly what the chain's desired set says, without any re-statement.
func TestConcurrentWritesFinalState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		w1 := &slowWrites{Memory: registrytest.NewMemoryNamed("m1")}
		w2 := &slowWrites{Memory: registrytest.NewMemoryNamed("m2")}
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: w1}, {Name: "tier2", Registry: w2}}, fastHealth...)
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 12 {
					in := inst("svc", fmt.Sprintf("x%d", (i+j)%3), 9000+j)
					if (i*7+j)%3 == 0 {
						c.Deregister(ctx, in)
					} else {
						c.Register(ctx, in)
					}
					time.Sleep(time.Duration(i%5) * 3 * time.Millisecond)
				}
			}()
		}
		time.Sleep(40 * time.Millisecond)
		w2.SetAvailable(false)
		time.Sleep(3 * time.Second)
		w2.SetAvailable(true)
		wg.Wait()
		time.Sleep(10 * time.Second)
		synctest.Wait()

		want := map[string]*registry.Instance{}
		for _, r := range c.Registrations() {
			if !r.Live {
				t.Errorf("registration %s not live after settling: %v", r.Instance, r.LastError)
			}
			want[r.Instance.ID] = r.Instance
		}
		for _, m := range []*registrytest.Memory{w1.Memory, w2.Memory} {
			got, err := m.GetService(ctx, "svc")
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("tier holds %v, the desired set %v", got, want)
				continue
			}
			for _, in := range got {
				if w := want[in.ID]; w == nil || !w.Equal(in) {
					t.Errorf("tier holds %v, the desired set %v", in, w)
				}
			}
		}
		if n := c.Status().PendingRegistrations; n != 0 {
			t.Errorf("%d pending after settling", n)
		}
	})
}

// TestRegisterHangingTiers: with every tier up as far as the probes know
// but no write answering, Register and Deregister return within their ctx
// and the registration stays pending.
func TestRegisterHangingTiers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newChain(t, []chain.Tier{
			{Name: "tier1", Registry: hang{registrytest.NewMemoryNamed("m1")}},
			{Name: "tier2", Registry: hang{registrytest.NewMemoryNamed("m2")}},
		}, chain.WithFailureThreshold(1000), chain.WithCallTimeout(time.Minute))
		defer c.Close()
		a1 := inst("svc", "a1", 9001)
		for _, call := range []func(context.Context, *registry.Instance) error{c.Register, c.Register, c.Deregister} {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			start := time.Now()
			err := call(ctx, a1)
			cancel()
			if err != nil {
				t.Errorf("write with hanging tiers: %v", err)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Errorf("write took %v, longer than its ctx", d)
			}
		}
		if n := c.Status().PendingRegistrations; n != 1 {
			t.Errorf("pending = %d, want 1", n)
		}
	})
}

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

// TestReplayBackoff: a tier that refuses writes while answering probes gets
// the registration retried with growing delays, not in a hot loop, until it
// lands.
func TestReplayBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &flaky{Memory: registrytest.NewMemoryNamed("f"), failWrites: 6}
		c := newChain(t, []chain.Tier{{Name: "flaky", Registry: ft}}, chain.WithFailureThreshold(100))
		if err := c.Register(context.Background(), inst("svc", "a1", 9001)); err != nil {
			t.Fatalf("Register: %v", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		mustGet(t, ft.Memory, "svc", "a1")
		regs, _ := ft.calls()
		if len(regs) != 7 {
			t.Fatalf("%d Register calls, want 7 (6 refused, 1 accepted)", len(regs))
		}
		for i := 2; i < len(regs); i++ {
			if gap, prev := regs[i].Sub(regs[i-1]), regs[i-1].Sub(regs[i-2]); gap < prev/2 || gap < 50*time.Millisecond {
				t.Errorf("retry %d after %v (previous gap %v): not backing off", i, gap, prev)
			}
		}
		if regs := c.Registrations(); len(regs) != 1 || !regs[0].Live {
			t.Errorf("Registrations = %+v, want a1 live", regs)
		}
	})
}

// TestConcurrentRegisterDeregister: the last call wins in every tier even
// when replays and calls interleave.
func TestConcurrentRegisterDeregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 2, fastHealth...)
		mems[1].SetAvailable(false)
		time.Sleep(3 * time.Second)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := inst("svc", fmt.Sprintf("x%d", i%4), 9000+i%4)
				for j := range 10 {
					if (i+j)%3 == 0 {
						c.Deregister(ctx, in)
					} else {
						c.Register(ctx, in)
					}
				}
			}()
		}
		wg.Wait()
		// Settle: the final desired set, re-stated sequentially.
		for i := range 4 {
			in := inst("svc", fmt.Sprintf("x%d", i), 9000+i)
			if i%2 == 0 {
				c.Register(ctx, in)
			} else {
				c.Deregister(ctx, in)
			}
		}
		mems[1].SetAvailable(true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		mustGet(t, mems[0], "svc", "x0", "x2")
		mustGet(t, mems[1], "svc", "x0", "x2")
		if n := c.Status().PendingRegistrations; n != 0 {
			t.Errorf("%d pending after recovery", n)
		}
	})
}

// TestRegistrationsRejectedByOneTier: an instance one tier (without a
// registry.Validator) rejects as invalid is taken back from the tiers that
// accepted it: ErrInvalid means nothing is left written. The others are
// untouched, and a Register every tier accepts works.
func TestRegistrationsRejectedByOneTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m1 := registrytest.NewMemoryNamed("m1")
		m2 := &rejecting{Memory: registrytest.NewMemoryNamed("m2")}
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: m1}, {Name: "tier2", Registry: m2}}, fastHealth...)
		big := inst("svc", "big", 9001)
		big.Metadata["blob"] = "x"
		if err := c.Register(ctx, big); !errors.Is(err, registry.ErrInvalid) {
			t.Fatalf("Register rejected by tier2 = %v, want ErrInvalid", err)
		}
		if err := c.Register(ctx, inst("svc", "ok", 9002)); err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			t.Helper()
			for _, r := range []registry.Registry{m1, m2} {
				if got, err := r.GetService(ctx, "svc"); err != nil || fmt.Sprint(ids(got)) != "[ok]" {
					t.Fatalf("%s: a tier holds %v, %v; want [ok]: the refused instance must not stay anywhere", when, ids(got), err)
				}
			}
			regs := c.Registrations()
			if len(regs) != 1 || regs[0].Instance.ID != "ok" || !regs[0].Live || regs[0].LastError != nil {
				t.Fatalf("%s: Registrations = %+v; want ok alone, live", when, regs)
			}
			if n := c.Status().PendingRegistrations; n != 0 {
				t.Errorf("%s: PendingRegistrations = %d, want 0", when, n)
			}
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		check("after Register")
		if n := m2.rejections.Load(); n != 1 {
			t.Errorf("tier2 rejected %d times, want 1: a rejection is not retried", n)
		}
		m2.SetAvailable(false)
		time.Sleep(3 * time.Second)
		m2.SetAvailable(true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		check("after recovery")

		// A Register every tier accepts.
		if err := c.Register(ctx, inst("svc", "big", 9001)); err != nil {
			t.Fatal(err)
		}
		regs := c.Registrations()
		if len(regs) != 2 || !regs[0].Live || regs[0].LastError != nil {
			t.Fatalf("Registrations after an accepted Register = %+v; want big live", regs)
		}
		if got, err := m2.GetService(ctx, "svc"); err != nil || fmt.Sprint(ids(got)) != "[big ok]" {
			t.Fatalf("tier2 holds %v, %v; want [big ok]", ids(got), err)
		}
	})
}

// TestRegisterValidatedBeforeWriting: a tier's registry.Validator refuses
// the instance before any tier is written.
func TestRegisterValidatedBeforeWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m1 := &validating{Memory: registrytest.NewMemoryNamed("m1")}
		m2 := &validating{Memory: registrytest.NewMemoryNamed("m2")}
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: m1}, {Name: "tier2", Registry: m2}}, fastHealth...)
		big := inst("svc", "big", 9001)
		big.Metadata["blob"] = "x"
		if err := c.Register(ctx, big); !errors.Is(err, registry.ErrInvalid) {
			t.Fatalf("Register = %v, want ErrInvalid", err)
		}
		synctest.Wait()
		if n := m1.calls.Load() + m2.calls.Load(); n != 0 {
			t.Errorf("%d Register calls reached the tiers, want 0", n)
		}
		if regs := c.Registrations(); len(regs) != 0 {
			t.Errorf("Registrations = %+v, want none", regs)
		}
	})
}

// TestStrictRegisterFailureKeepsPrevious: a strict re-registration that no
// tier accepts is dropped, and the instance's previous registration stays
// what the chain keeps (it must not turn into a deregistration).
func TestStrictRegisterFailureKeepsPrevious(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, c := memChain(t, 1, append(fastHealth, chain.WithStrictRegister(true))...)
		v1 := inst("svc", "a1", 9001)
		if err := c.Register(ctx, v1); err != nil {
			t.Fatal(err)
		}
		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		v2 := inst("svc", "a1", 9002)
		if err := c.Register(ctx, v2); !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("strict Register with every tier down = %v, want ErrUnavailable", err)
		}
		mems[0].SetAvailable(true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		got, err := mems[0].GetService(ctx, "svc")
		if err != nil || len(got) != 1 || !got[0].Equal(v1) {
			t.Fatalf("tier after recovery = %v, %v; want the first registration %v", got, err, v1)
		}
		regs := c.Registrations()
		if len(regs) != 1 || !regs[0].Live || !regs[0].Instance.Equal(v1) {
			t.Errorf("Registrations = %+v, want %v live", regs, v1)
		}
	})
}
