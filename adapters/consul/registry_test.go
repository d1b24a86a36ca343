package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// TestAgent groups the tests that share one plain agent.
func TestAgent(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})

	// Metadata beyond Consul's Meta rules survives a round trip through a
	// real agent; metadata beyond what the encoding can hold is refused and
	// nothing is written.
	t.Run("MetadataLimits", func(t *testing.T) {
		r := newRegistry(t, testConfig(t, a.Addr))
		svc := "limits"
		md := map[string]string{"go.micro.endpoint": strings.Repeat("é", 400), "a b": "c", "consul-x": "y"}
		for i := range 100 {
			md[fmt.Sprintf("key%03d", i)] = "value"
		}
		in := instance(svc, "m1", 7500)
		in.Metadata = md
		if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
			t.Fatalf("Register: %v", err)
		}
		waitFor(t, "round trip", recoverWithin, testutil.Sees(t, r, svc, in))

		big := instance(svc, "m2", 7510)
		big.Metadata = map[string]string{}
		for i := range 100 {
			big.Metadata[fmt.Sprintf("key%03d", i)] = strings.Repeat("v", 400)
		}
		err := r.Register(ctxT(t, 10*time.Second), big)
		if !errors.Is(err, registry.ErrInvalid) {
			t.Fatalf("Register 40 KB of metadata = %v, want ErrInvalid", err)
		}
		t.Logf("oversized: %v", err)
		if _, _, err := a.Client(t).Agent().Service(big.ID, nil); err == nil {
			t.Error("a refused registration was written")
		}
		waitFor(t, "only the first instance", recoverWithin, testutil.Sees(t, r, svc, in))
	})

	// One agent has one service ID namespace: instances of different
	// services with one ID coexist, a foreign service holding the ID is left
	// alone, and another registry (a restarted process) can deregister them.
	t.Run("SharedInstanceID", func(t *testing.T) {
		raw := a.Client(t)
		foreign := &consulapi.AgentServiceRegistration{ID: "shared-1", Name: "foreign-svc", Port: 1, Address: "127.0.0.1"}
		if err := raw.Agent().ServiceRegister(foreign); err != nil {
			t.Fatal(err)
		}
		r := newRegistry(t, testConfig(t, a.Addr))
		x := instance("shared-x", "shared-1", 7600)
		y := instance("shared-y", "shared-1", 7610)
		for _, in := range []*registry.Instance{x, y} {
			if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
				t.Fatalf("Register(%s): %v", in, err)
			}
		}
		waitFor(t, "x", recoverWithin, testutil.Sees(t, r, x.Name, x))
		waitFor(t, "y", recoverWithin, testutil.Sees(t, r, y.Name, y))
		got, _, err := raw.Agent().Service("shared-1", nil)
		if err != nil || got.Service != "foreign-svc" {
			t.Errorf("the foreign service's registration = %+v, %v; want it untouched", got, err)
		}
		states := r.Registrations()
		if len(states) != 2 || !states[0].Instance.Equal(x) || !states[1].Instance.Equal(y) || !states[0].Live || !states[1].Live {
			t.Errorf("Registrations = %+v, want x and y, live", states)
		}

		// A registry that did not register them (a restarted process).
		r2 := newRegistry(t, testConfig(t, a.Addr))
		for _, in := range []*registry.Instance{x, y} {
			if err := r2.Deregister(ctxT(t, 10*time.Second), &registry.Instance{Name: in.Name, ID: in.ID}); err != nil {
				t.Fatalf("Deregister(%s): %v", in, err)
			}
		}
		r.Close() // stop the heartbeats, which would put them back
		if _, _, err := raw.Agent().Service("shared-1", nil); err != nil {
			t.Errorf("deregistering x and y removed the foreign service: %v", err)
		}
		for _, in := range []*registry.Instance{x, y} {
			if _, _, err := raw.Agent().Service(qualifiedID(in.Name, in.ID), nil); err == nil {
				t.Errorf("%s still registered after Deregister", in)
			}
		}
	})

	// A ready client passed in Config is used as is.
	t.Run("ReadyClient", func(t *testing.T) {
		r := newRegistry(t, Config{Client: a.Client(t), TTL: testTTL, WaitTime: testWaitTime})
		if err := r.Ping(ctxT(t, 10*time.Second)); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		in := instance("ready-client", "c1", 7700)
		if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "GetService", recoverWithin, testutil.Sees(t, r, in.Name, in))
	})
}

// TestUnavailable checks the errors while the agent is down: ErrUnavailable
// everywhere, a watcher that reports it, a registration kept pending and
// restored when the agent is back.
func TestUnavailable(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	r := newRegistry(t, testConfig(t, a.Addr))
	svc := "unavailable"
	in := instance(svc, "u1", 7800)
	if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatal(err)
	}
	w, err := r.Watch(ctxT(t, time.Minute), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	until(t, w, svc, recoverWithin, in)

	a.Stop()
	ctx := ctxT(t, 10*time.Second)
	checks := map[string]error{"Ping": r.Ping(ctx)}
	_, checks["GetService"] = r.GetService(ctx, svc)
	_, checks["ListServices"] = r.ListServices(ctx)
	checks["Register"] = r.Register(ctx, instance(svc, "u2", 7810))
	for name, err := range checks {
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("%s with the agent down = %v, want ErrUnavailable", name, err)
		}
	}
	if _, err := testutil.Next(t, w, recoverWithin); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("watcher with the agent down: Next = %v, want ErrUnavailable", err)
	}
	waitFor(t, "registration pending", recoverWithin, live(r, in, false))

	a.Restart(t)
	waitFor(t, "registration live again", recoverWithin, live(r, in, true))
	waitFor(t, "instance back", recoverWithin, testutil.Sees(t, r, svc, in))
}

// TestStopAndCloseUnblock checks that Stop, the Watch ctx and Close end
// watchers whose queries hang (behind a partition, with a wait of minutes)
// at once, that the hub stops promptly when its last watcher stops, and
// that Close returns promptly with a heartbeat stuck too.
func TestStopAndCloseUnblock(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	p, err := faultproxy.Start(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg := testConfig(t, p.Addr())
	cfg.WaitTime = 5 * time.Minute
	cfg.Timeout = time.Minute
	r := newRegistry(t, cfg)
	other := newRegistry(t, cfg)
	svc := "unblock"
	if err := r.Register(ctxT(t, 10*time.Second), instance(svc, "b1", 7900)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ws []registry.Watcher
	for _, name := range []string{svc, svc, ""} {
		wctx := ctxT(t, time.Minute)
		if len(ws) == 1 {
			wctx = ctx
		}
		w, err := r.Watch(wctx, name)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if _, err := testutil.Next(t, w, recoverWithin); err != nil {
			t.Fatalf("first Next: %v", err)
		}
		ws = append(ws, w)
	}
	lone, err := other.Watch(ctxT(t, time.Minute), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer lone.Stop()
	if _, err := testutil.Next(t, lone, recoverWithin); err != nil {
		t.Fatalf("first Next: %v", err)
	}
	p.Partition() // every request from now on hangs

	watchers := func(want int) func() string {
		return func() string {
			r.mu.Lock()
			n := r.feeds.Len()
			r.mu.Unlock()
			if n != want {
				return fmt.Sprintf("%d watchers, want %d", n, want)
			}
			return ""
		}
	}
	ws[0].Stop()
	d := waitFor(t, "watcher ended by Stop", 5*time.Second, watchers(2))
	t.Logf("Stop ended its watcher in %v", d)
	cancel()
	d = waitFor(t, "watcher ended by the Watch ctx", 5*time.Second, watchers(1))
	t.Logf("ctx cancel ended its watcher in %v", d)

	other.mu.Lock()
	h := other.hub
	other.mu.Unlock()
	start := time.Now()
	lone.Stop()
	select {
	case <-h.done:
		t.Logf("the hub stopped %v after its last watcher, its queries hanging", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Error("the hub did not stop within 5s of its last watcher")
	}

	start = time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with hung requests", d)
	} else {
		t.Logf("Close returned in %v", d)
	}
	if _, err := ws[2].Next(); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("watch-all Next after Close = %v, want ErrClosed", err)
	}
}
