package chain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// results drains everything a pump delivered so far, errors included.
func (p *pump) results() []pumped {
	var out []pumped
	for {
		select {
		case r := <-p.ch:
			out = append(out, r)
		default:
			return out
		}
	}
}

// expectTooOld checks that the pump delivered exactly one thing since the
// last drain: a transient error wrapping registry.ErrUnavailable.
func (p *pump) expectTooOld(t *testing.T) {
	t.Helper()
	got := p.results()
	if len(got) != 1 || got[0].u != nil || !errors.Is(got[0].err, registry.ErrUnavailable) || errors.Is(got[0].err, registry.ErrStopped) {
		t.Fatalf("delivered %s; want one transient ErrUnavailable and no state", describePumped(got))
	}
}

func describePumped(ps []pumped) string {
	s := ""
	for _, p := range ps {
		if p.err != nil {
			s += fmt.Sprintf("[error %v] ", p.err)
			continue
		}
		s += fmt.Sprintf("[%s %v] ", p.u.Source, ids(p.u.Instances))
	}
	return s
}

// TestSnapshotMaxAgeNewWatcher: with every tier down and only a snapshot
// state older than the max age, a new watcher's first Next is a transient
// ErrUnavailable rather than the stale state, a watch-all gets nothing for
// the service, and both get the tier's state when it comes back.
func TestSnapshotMaxAgeNewWatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := newMemStore()
		store.SaveSnapshot(ctx, []*registry.Update{{
			Service: "svc", Instances: []*registry.Instance{inst("svc", "a1", 9001)}, Source: "tier1", Time: time.Now().Add(-2 * time.Hour),
		}})
		mems, tiers := memTiers(1)
		if err := mems[0].Register(ctx, inst("svc", "a2", 9002)); err != nil {
			t.Fatal(err)
		}
		mems[0].SetAvailable(false)
		c := newChain(t, tiers, append(fastHealth, chain.WithSnapshot(store), chain.WithSnapshotMaxAge(time.Hour))...)
		defer c.Close()
		time.Sleep(3 * time.Second) // the tier is found down
		synctest.Wait()

		p := startPump(t, c, "svc")
		defer p.w.Stop()
		synctest.Wait()
		p.expectTooOld(t)
		all := startPump(t, c, "")
		defer all.w.Stop()
		synctest.Wait()
		if got := all.results(); len(got) != 0 {
			t.Fatalf("watch-all delivered %s; want nothing", describePumped(got))
		}
		if _, err := c.GetService(ctx, "svc"); !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "older than") {
			t.Fatalf("GetService = %v, want ErrUnavailable saying the snapshot state is too old", err)
		}
		// Status says the state is not served: no instances, not serving
		// from the snapshot, and the level says why.
		st := c.Status()
		if len(st.Services) != 1 || !st.Services[0].TooOld || st.Services[0].Instances != 0 || st.Snapshot.Serving != 0 {
			t.Fatalf("Status: services %+v, snapshot serving %d; want svc too old with 0 instances, none serving", st.Services, st.Snapshot.Serving)
		}
		if r := strings.Join(st.Degradation.Reasons, "; "); strings.Contains(r, "served from the snapshot") || !strings.Contains(r, "older than the max age") {
			t.Fatalf("degradation reasons %q: want the too-old service, not one served from the snapshot", r)
		}
		if names, err := c.ListServices(ctx); err != nil || len(names) != 0 {
			t.Fatalf("ListServices = %v, %v; want none", names, err)
		}

		// The tier's state replaces the snapshot's a1 after the empty-push
		// guard's grace (a1 is dropped by a tier that just recovered).
		mems[0].SetAvailable(true)
		time.Sleep(8 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a2")
		all.expect(t, "tier1", "a2")
		mustGet(t, c, "svc", "a2")
	})
}

// TestSnapshotMaxAgeWhileServed: a snapshot state served during an outage
// is delivered while fresh; when it grows older than the max age the
// watchers get a transient ErrUnavailable at that moment (and new ones get
// it at once), and the tier's state when it comes back.
func TestSnapshotMaxAgeWhileServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mems, tiers := memTiers(1)
		if err := mems[0].Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		c := newChain(t, tiers, append(fastHealth, chain.WithSnapshot(newMemStore()), chain.WithSnapshotMaxAge(time.Minute))...)
		defer c.Close()
		p := startPump(t, c, "svc")
		defer p.w.Stop()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a1")

		mems[0].SetAvailable(false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		p.expect(t, chain.SnapshotSource, "a1")
		mustGet(t, c, "svc", "a1")

		// Still within the max age of the tier's last sign of life.
		time.Sleep(50 * time.Second)
		synctest.Wait()
		if got := p.results(); len(got) != 0 {
			t.Fatalf("delivered %s before the max age; want nothing", describePumped(got))
		}
		mustGet(t, c, "svc", "a1")

		// Past it: told once, at that moment, with nothing else.
		time.Sleep(15 * time.Second)
		synctest.Wait()
		p.expectTooOld(t)
		if _, err := c.GetService(ctx, "svc"); !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("GetService past the max age = %v, want ErrUnavailable", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := p.results(); len(got) != 0 {
			t.Fatalf("delivered %s after the error; want nothing more", describePumped(got))
		}
		p2 := startPump(t, c, "svc")
		defer p2.w.Stop()
		synctest.Wait()
		p2.expectTooOld(t)

		mems[0].SetAvailable(true)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		p.expect(t, "tier1", "a1")
		p2.expect(t, "tier1", "a1")
		mustGet(t, c, "svc", "a1")
	})
}

// rejecting is a tier that refuses, as invalid, instances with a "blob"
// metadata key (like Consul refusing metadata that etcd accepts).
type rejecting struct {
	*registrytest.Memory
	rejections atomic.Int64
}

func (r *rejecting) Register(ctx context.Context, in *registry.Instance) error {
	if in.Metadata["blob"] != "" {
		r.rejections.Add(1)
		return fmt.Errorf("rejecting: register %s: %w: metadata too large", in, registry.ErrInvalid)
	}
	return r.Memory.Register(ctx, in)
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
		defer c.Close()
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

// validating is a Memory that says what it accepts (registry.Validator):
// no metadata key "blob".
type validating struct {
	*registrytest.Memory
	calls atomic.Int64
}

func (v *validating) ValidateInstance(in *registry.Instance) error {
	if _, ok := in.Metadata["blob"]; ok {
		return fmt.Errorf("validating: %s: %w: metadata key blob", in, registry.ErrInvalid)
	}
	return nil
}

func (v *validating) Register(ctx context.Context, in *registry.Instance) error {
	v.calls.Add(1)
	return v.Memory.Register(ctx, in)
}

// TestRegisterValidatedBeforeWriting: a tier's registry.Validator refuses
// the instance before any tier is written.
func TestRegisterValidatedBeforeWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m1 := &validating{Memory: registrytest.NewMemoryNamed("m1")}
		m2 := &validating{Memory: registrytest.NewMemoryNamed("m2")}
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: m1}, {Name: "tier2", Registry: m2}}, fastHealth...)
		defer c.Close()
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
