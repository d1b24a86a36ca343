package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// load registers and deregisters instances of "churn" in a loop until
// stopped, counting the calls that failed.
type load struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
}

func startLoad(reg registry.Registry) *load {
	l := &load{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			in := instance("churn", fmt.Sprintf("c%d", i%10))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := reg.Register(ctx, in)
			if err == nil {
				err = reg.Deregister(ctx, in)
			}
			cancel()
			if err != nil {
				l.failed.Add(1)
			} else {
				l.ok.Add(1)
			}
		}
	}()
	return l
}

func (l *load) end() (ok, failed int64) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load()
}

func ids(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// TestLeaderKilledUnderLoad: the leader dies while a client registers and
// deregisters in a loop and holds 20 registrations; the registrations stay
// (or come back) and a watcher sees every later change. Measured: election
// time, calls failed, time until a change made after the kill reached the
// watcher.
func TestLeaderKilledUnderLoad(t *testing.T) {
	c := startCluster(t)
	reg := newRegistry(t, c.Endpoints(), "/lk")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	held := ids(20, "h")
	for _, id := range held {
		if err := reg.Register(ctx, instance("held", id)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := reg.Watch(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := follow(w)
	waitFor(t, "watcher sees the 20", func() string { return seen.has(held...) })
	l := startLoad(reg)
	waitFor(t, "load running", func() string {
		if l.ok.Load() < 20 {
			return "warming up"
		}
		return ""
	})
	leader := c.Leader()
	killed := time.Now()
	c.Member(leader).Stop()
	newLeader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Since(killed)
	okBefore := l.ok.Load()
	waitFor(t, "load goes on after the kill", func() string {
		if l.ok.Load() < okBefore+20 {
			return "stalled"
		}
		return ""
	})
	if err := reg.Register(ctx, instance("held", "h99")); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	waitFor(t, "watcher sees h99", func() string { return seen.has(append(held, "h99")...) })
	reached := time.Since(changed)
	ok, failed := l.end()
	obs := rawClient(t, []string{c.Member(newLeader).Endpoint()})
	waitFor(t, "all 21 registrations on the cluster", func() string {
		r, err := obs.Get(ctx, "/lk/held/", clientOpts()...)
		if err != nil {
			return err.Error()
		}
		if r.Count != 21 {
			return fmt.Sprintf("%d keys", r.Count)
		}
		return ""
	})
	t.Logf("leader %d killed under load: new leader %d in %v; load calls ok %d failed %d; change after the kill reached the watcher in %v",
		leader, newLeader, elected.Round(time.Millisecond), ok, failed, reached.Round(time.Millisecond))
	if err := c.Member(leader).Start(); err != nil {
		t.Fatal(err)
	}
}

// TestMemberReplaced: a member is wiped and re-joined (removed, added back
// empty) while a client holds registrations through every endpoint; the
// registrations and a watcher stay correct, and the new member serves the
// same data.
func TestMemberReplaced(t *testing.T) {
	c := startCluster(t)
	reg := newRegistry(t, c.Endpoints(), "/mr")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	held := ids(5, "r")
	for _, id := range held {
		if err := reg.Register(ctx, instance("held", id)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := reg.Watch(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := follow(w)
	waitFor(t, "watcher sees the 5", func() string { return seen.has(held...) })
	victim := (c.Leader() + 1) % 3
	oldID := c.Member(victim).ID()
	start := time.Now()
	if err := c.Replace(ctx, victim); err != nil {
		t.Fatal(err)
	}
	rejoined := time.Since(start)
	if c.Member(victim).ID() == oldID {
		t.Errorf("replaced member kept its ID %s", oldID)
	}
	if err := reg.Register(ctx, instance("held", "r99")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watcher sees r99", func() string { return seen.has(append(held, "r99")...) })
	only := rawClient(t, []string{c.Member(victim).Endpoint()})
	caughtUp := waitFor(t, "the new member serves the 6", func() string {
		r, err := only.Get(ctx, "/mr/held/", clientOpts()...)
		if err != nil {
			return err.Error()
		}
		if r.Count != 6 {
			return fmt.Sprintf("%d keys", r.Count)
		}
		return ""
	})
	t.Logf("member %d wiped and re-joined in %v; serving the current data %v later", victim, rejoined.Round(time.Millisecond), caughtUp.Round(time.Millisecond))
}
