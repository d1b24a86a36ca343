package chain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
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
		store := storeWith("svc", "tier1", time.Now().Add(-2*time.Hour), inst("svc", "a1", 9001))
		mems, tiers := memTiers(1)
		if err := mems[0].Register(ctx, inst("svc", "a2", 9002)); err != nil {
			t.Fatal(err)
		}
		mems[0].SetAvailable(false)
		c := newChain(t, tiers, append(fastHealth, chain.WithSnapshot(store), chain.WithSnapshotMaxAge(time.Hour))...)
		time.Sleep(3 * time.Second) // the tier is found down
		synctest.Wait()

		p := startPump(t, c, "svc")
		synctest.Wait()
		p.expectTooOld(t)
		all := startPump(t, c, "")
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
		p := startPump(t, c, "svc")
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
