package consul

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// connLimit is the agent's http_max_conns_per_client in TestHub: low
// enough that one blocking query per service (the design before the hub)
// runs into it with the 40 services these tests watch, high enough for the
// two registries of a subtest (the watching one and the one registering)
// at their bound.
const connLimit = 2*maxConns - 4

// maxHubConns bounds the connections a registry of TestHub may hold at
// once: the registry's own bound (maxConns, which tune sets on the
// transport). The point: connections do not grow with watchers. A hub
// that held one blocking query per watcher would starve at that bound and
// fail the tests' waits.
const maxHubConns = maxConns

// connCounter counts the connections of a transport.
type connCounter struct {
	open, peak, dials atomic.Int64
}

func (c *connCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.dials.Add(1)
	n := c.open.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	return &countedConn{Conn: conn, c: c}, nil
}

type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() { cc.c.open.Add(-1) })
	return cc.Conn.Close()
}

// warnCounter counts the records of Warn level and above it passes on.
type warnCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (w warnCounter) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		w.n.Add(1)
	}
	return w.Handler.Handle(ctx, rec)
}

func (w warnCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnCounter{w.Handler.WithAttrs(attrs), w.n}
}

func (w warnCounter) WithGroup(name string) slog.Handler {
	return warnCounter{w.Handler.WithGroup(name), w.n}
}

// countedRegistry returns a registry on a whose connections are counted
// and whose warnings (failed heartbeats among them) are counted.
func countedRegistry(t *testing.T, a *consultest.Agent) (*Registry, *connCounter, *atomic.Int64) {
	t.Helper()
	conns, warns := new(connCounter), new(atomic.Int64)
	tr := cleanhttp.DefaultPooledTransport()
	tr.DialContext = conns.dial
	tune(tr)                           // as New sets its own transport
	t.Cleanup(tr.CloseIdleConnections) // after the registry's Close
	client, err := consulapi.NewClient(&consulapi.Config{Address: a.Addr, Scheme: "http", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, a.Addr)
	cfg.Client = client
	cfg.Logger = slog.New(warnCounter{slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}), warns})
	return newRegistry(t, cfg), conns, warns
}

// state is what a watcher has delivered so far, per service.
type state map[string][]*registry.Instance

// follow reads w into st until cond(st) returns "" and returns how long
// that took; every error fails the test (an agent refusing connections
// shows up here as a 429). It fails after timeout with cond's last reason.
func follow(t *testing.T, w registry.Watcher, st state, timeout time.Duration, cond func(state) string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		why := cond(st)
		if why == "" {
			return time.Since(start)
		}
		left := timeout - time.Since(start)
		if left <= 0 {
			t.Fatalf("not within %v: %s", timeout, why)
		}
		u, err := testutil.Next(t, w, left+time.Second)
		if err != nil {
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				t.Fatalf("watcher ended: %v", err)
			}
			t.Errorf("watch error: %v", err)
			continue
		}
		st[u.Service] = u.Instances
	}
}

// holds returns a condition true when st holds want per service (a nil or
// empty want: an empty state delivered).
func holds(want map[string][]*registry.Instance) func(state) string {
	return func(st state) string {
		var missing []string
		for svc, ins := range want {
			got, ok := st[svc]
			if !ok || !registry.EqualInstances(got, ins) {
				missing = append(missing, svc)
			}
		}
		if len(missing) == 0 {
			return ""
		}
		sort.Strings(missing)
		return fmt.Sprintf("%d services not in the wanted state, e.g. %s: got %v, want %v", len(missing), missing[0], st[missing[0]], want[missing[0]])
	}
}

// allLive fails the test unless every registration of r is live and never
// failed.
func allLive(t *testing.T, r *Registry, want int) {
	t.Helper()
	states := r.Registrations()
	if len(states) != want {
		t.Errorf("%d registrations, want %d", len(states), want)
	}
	for _, s := range states {
		if !s.Live || s.LastError != nil {
			t.Errorf("registration %s: live %v, last error %v", s.Instance, s.Live, s.LastError)
		}
	}
}

func register(t *testing.T, r registry.Registry, ins ...*registry.Instance) {
	t.Helper()
	for _, in := range ins {
		if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
			t.Fatalf("Register(%s): %v", in, err)
		}
	}
}

// TestHub runs many watchers on one registry against an agent that allows
// connLimit connections per client: the hub must stay within maxHubConns,
// no request may be refused, and the heartbeats keep working.
func TestHub(t *testing.T) {
	a := consultest.Start(t, consultest.Options{HCL: []string{fmt.Sprintf("limits { http_max_conns_per_client = %d }", connLimit)}})
	const n = 40

	t.Run("WatchAllManyServices", func(t *testing.T) {
		r, conns, warns := countedRegistry(t, a)
		ins := make([]*registry.Instance, n)
		want := make(map[string][]*registry.Instance, n)
		for i := range ins {
			ins[i] = instance(fmt.Sprintf("all-%02d", i), "a1", 8000+2*i)
			want[ins[i].Name] = []*registry.Instance{ins[i]}
		}
		register(t, r, ins[:n/2]...)
		w, err := r.Watch(ctxT(t, 2*time.Minute), "")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		register(t, r, ins[n/2:]...)
		st := make(state)
		d := follow(t, w, st, recoverWithin, holds(want))
		t.Logf("watch-all saw %d services after %v", n, d)
		allLive(t, r, n)

		// A new instance, new metadata alone, the last instance leaving.
		extra := instance(ins[0].Name, "a2", 8100)
		register(t, r, extra)
		want[ins[0].Name] = []*registry.Instance{ins[0], extra}
		meta := ins[1].Clone()
		meta.Metadata["weight"] = "5"
		register(t, r, meta)
		want[ins[1].Name] = []*registry.Instance{meta}
		if err := r.Deregister(ctxT(t, 10*time.Second), ins[2]); err != nil {
			t.Fatal(err)
		}
		want[ins[2].Name] = nil
		d = follow(t, w, st, recoverWithin, holds(want))
		t.Logf("watch-all saw the changes after %v", d)
		allLive(t, r, n)
		if got := warns.Load(); got != 0 {
			t.Errorf("%d warnings logged, want none", got)
		}
		if peak := conns.peak.Load(); peak > maxHubConns {
			t.Errorf("peak of %d connections, want at most %d", peak, maxHubConns)
		}
		t.Logf("connections: peak %d, %d dialled", conns.peak.Load(), conns.dials.Load())
	})

	// Named watchers on a registry of their own: its connections are the
	// hub's alone.
	t.Run("NamedManyServices", func(t *testing.T) {
		owner, _, ownerWarns := countedRegistry(t, a)
		r, conns, warns := countedRegistry(t, a)
		ins := make([]*registry.Instance, n)
		for i := range ins {
			ins[i] = instance(fmt.Sprintf("named-%02d", i), "n1", 8200+2*i)
		}
		register(t, owner, ins...)
		ws := make([]registry.Watcher, n)
		for i, in := range ins {
			w, err := r.Watch(ctxT(t, 2*time.Minute), in.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			ws[i] = w
		}
		for i, w := range ws {
			// The first Next is the state read after Watch: no waiting.
			u, err := testutil.Next(t, w, recoverWithin)
			if err != nil || u.Service != ins[i].Name || !registry.EqualInstances(u.Instances, ins[i:i+1]) {
				t.Fatalf("first Next of %s = %v, %v; want %v", ins[i].Name, u, err, ins[i])
			}
		}
		// Half the services get a second instance, the others lose theirs.
		want := make([][]*registry.Instance, n)
		for i, in := range ins {
			if i%2 == 0 {
				extra := instance(in.Name, "n2", 8300+2*i)
				register(t, owner, extra)
				want[i] = []*registry.Instance{in, extra}
			} else if err := owner.Deregister(ctxT(t, 10*time.Second), in); err != nil {
				t.Fatal(err)
			}
		}
		for i, w := range ws {
			st := make(state)
			follow(t, w, st, recoverWithin, holds(map[string][]*registry.Instance{ins[i].Name: want[i]}))
		}
		allLive(t, owner, n)
		if got := warns.Load() + ownerWarns.Load(); got != 0 {
			t.Errorf("%d warnings logged, want none", got)
		}
		if peak := conns.peak.Load(); peak > maxHubConns {
			t.Errorf("peak of %d connections for %d watchers, want at most %d", peak, n, maxHubConns)
		}
		t.Logf("connections of %d watchers: peak %d, %d dialled", n, conns.peak.Load(), conns.dials.Load())
	})

	// A re-registration with new metadata touches no check: only the
	// catalog query sees it.
	t.Run("MetadataOnly", func(t *testing.T) {
		r := newRegistry(t, testConfig(t, a.Addr))
		raw := a.Client(t)
		in := instance("meta-only", "m1", 8400)
		register(t, r, in)
		named, err := r.Watch(ctxT(t, time.Minute), in.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer named.Stop()
		all, err := r.Watch(ctxT(t, time.Minute), "")
		if err != nil {
			t.Fatal(err)
		}
		defer all.Stop()
		until(t, named, in.Name, recoverWithin, in)
		until(t, all, in.Name, recoverWithin, in)
		checks := func() consulapi.HealthChecks {
			cs, _, err := raw.Health().Checks(in.Name, nil)
			if err != nil || len(cs) != 1 {
				t.Fatalf("checks of %s: %v, %v", in.Name, cs, err)
			}
			return cs
		}
		before := checks()

		for i := range 3 {
			in = in.Clone()
			in.Metadata["weight"] = fmt.Sprint(i)
			start := time.Now()
			register(t, r, in)
			until(t, named, in.Name, recoverWithin, in)
			t.Logf("LATENCY metadata-only change -> named watcher: %v", time.Since(start))
			until(t, all, in.Name, recoverWithin, in)
		}
		if after := checks(); after[0].ModifyIndex != before[0].ModifyIndex {
			t.Errorf("the check changed (ModifyIndex %d -> %d): the test no longer shows a change only the catalog sees", before[0].ModifyIndex, after[0].ModifyIndex)
		}
	})

	// How long a change takes to reach a watcher (logged for comparison;
	// a change that touches checks goes by the check query, without
	// waiting for a full re-read).
	t.Run("Latency", func(t *testing.T) {
		r := newRegistry(t, testConfig(t, a.Addr))
		base := instance("latency", "t0", 8600)
		register(t, r, base)
		w, err := r.Watch(ctxT(t, time.Minute), base.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		until(t, w, base.Name, recoverWithin, base)
		for i := range 3 {
			in := instance(base.Name, fmt.Sprintf("t%d", i+1), 8610+2*i)
			start := time.Now()
			register(t, r, in)
			until(t, w, base.Name, recoverWithin, base, in)
			t.Logf("LATENCY instance registered -> named watcher: %v", time.Since(start))
			start = time.Now()
			if err := r.Deregister(ctxT(t, 10*time.Second), in); err != nil {
				t.Fatal(err)
			}
			until(t, w, base.Name, recoverWithin, base)
			t.Logf("LATENCY instance deregistered -> named watcher: %v", time.Since(start))
		}
	})

	// The hub starts with the first watcher, stops with the last, and a
	// new watcher starts another; watchers coming and going concurrently
	// each get their first state.
	t.Run("Lifecycle", func(t *testing.T) {
		r := newRegistry(t, testConfig(t, a.Addr))
		in := instance("life", "l1", 8500)
		register(t, r, in)
		current := func() *hub {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.hub
		}
		w1, err := r.Watch(ctxT(t, time.Minute), in.Name)
		if err != nil {
			t.Fatal(err)
		}
		w2, err := r.Watch(ctxT(t, time.Minute), "")
		if err != nil {
			t.Fatal(err)
		}
		until(t, w1, in.Name, recoverWithin, in)
		until(t, w2, in.Name, recoverWithin, in)
		h := current()
		w1.Stop()
		if current() != h {
			t.Fatal("the hub stopped while a watcher remains")
		}
		w2.Stop()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Fatal("the hub did not stop within 5s of its last watcher")
		}
		if current() != nil {
			t.Error("a stopped hub is still the registry's")
		}

		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				name := in.Name
				if i%4 == 0 {
					name = ""
				}
				w, err := r.Watch(ctxT(t, time.Minute), name)
				if err != nil {
					t.Error(err)
					return
				}
				defer w.Stop()
				if _, err := testutil.Next(t, w, recoverWithin); err != nil {
					t.Errorf("first Next: %v", err)
				}
			})
		}
		wg.Wait()
		waitFor(t, "no hub left", 5*time.Second, func() string {
			if current() != nil {
				return "a hub still runs"
			}
			return ""
		})
	})
}

// TestNodeCheck puts the node in maintenance (a node check, critical): an
// instance with a check of its own sees it through its fingerprint, one
// registered without any check only through a full re-read.
func TestNodeCheck(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	raw := a.Client(t)
	r := newRegistry(t, testConfig(t, a.Addr))
	if err := raw.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "plain-1", Name: "plain", Address: "127.0.0.1", Port: 9001}); err != nil {
		t.Fatal(err)
	}
	plain := &registry.Instance{ID: "plain-1", Name: "plain", Endpoints: []string{"http://127.0.0.1:9001"}}
	checked := instance("checked", "c1", 9100)
	register(t, r, checked)
	watch := func(name string) registry.Watcher {
		w, err := r.Watch(ctxT(t, time.Minute), name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Stop() })
		return w
	}
	wPlain, wChecked := watch(plain.Name), watch(checked.Name)
	until(t, wPlain, plain.Name, recoverWithin, plain)
	until(t, wChecked, checked.Name, recoverWithin, checked)

	start := time.Now()
	if err := raw.Agent().EnableNodeMaintenance("test"); err != nil {
		t.Fatal(err)
	}
	until(t, wChecked, checked.Name, recoverWithin)
	t.Logf("node in maintenance: the service with a check saw it after %v", time.Since(start))
	until(t, wPlain, plain.Name, recoverWithin)
	t.Logf("node in maintenance: the service without a check saw it after %v", time.Since(start))

	if err := raw.Agent().DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	until(t, wChecked, checked.Name, recoverWithin, checked)
	until(t, wPlain, plain.Name, recoverWithin, plain)
}

func TestFingerprints(t *testing.T) {
	seed := maphash.MakeSeed()
	base := consulapi.HealthChecks{
		{Node: "n1", CheckID: "serfHealth", Status: "passing", CreateIndex: 1, ModifyIndex: 1},
		{Node: "n2", CheckID: "serfHealth", Status: "passing", CreateIndex: 2, ModifyIndex: 2},
		{Node: "n1", CheckID: "service:a1", ServiceID: "a1", ServiceName: "a", Status: "passing", CreateIndex: 10, ModifyIndex: 10},
		{Node: "n1", CheckID: "service:a2", ServiceID: "a2", ServiceName: "a", Status: "passing", CreateIndex: 11, ModifyIndex: 11},
		{Node: "n2", CheckID: "service:b1", ServiceID: "b1", ServiceName: "b", Status: "passing", CreateIndex: 12, ModifyIndex: 12},
	}
	clone := func(edit func(consulapi.HealthChecks) consulapi.HealthChecks) consulapi.HealthChecks {
		cs := make(consulapi.HealthChecks, len(base))
		for i, c := range base {
			cc := *c
			cs[i] = &cc
		}
		return edit(cs)
	}
	fps, nodes := fingerprints(seed, base)
	if len(fps) != 2 || len(nodes) != 2 {
		t.Fatalf("fingerprints = %v, %v; want 2 services and 2 nodes", fps, nodes)
	}
	for _, tc := range []struct {
		name        string
		edit        func(consulapi.HealthChecks) consulapi.HealthChecks
		changed     []string // services whose fingerprint changes
		nodeChanged bool
	}{
		{"same checks, other order", func(cs consulapi.HealthChecks) consulapi.HealthChecks {
			slices.Reverse(cs)
			return cs
		}, nil, false},
		{"status", func(cs consulapi.HealthChecks) consulapi.HealthChecks {
			cs[2].Status, cs[2].ModifyIndex = "critical", 20
			return cs
		}, []string{"a"}, false},
		{"modified, same status", func(cs consulapi.HealthChecks) consulapi.HealthChecks {
			cs[4].ModifyIndex = 21
			return cs
		}, []string{"b"}, false},
		{"check removed", func(cs consulapi.HealthChecks) consulapi.HealthChecks {
			return slices.Delete(cs, 3, 4)
		}, []string{"a"}, false},
		{"re-created with the same ID", func(cs consulapi.HealthChecks) consulapi.HealthChecks {
			cs[4].CreateIndex, cs[4].ModifyIndex = 30, 30
			return cs
		}, []string{"b"}, false},
		{"node check", func(cs consulapi.HealthChecks) consulapi.HealthChecks {
			cs[1].Status, cs[1].ModifyIndex = "critical", 22
			return cs
		}, []string{"b"}, true},
		{"service gone", func(cs consulapi.HealthChecks) consulapi.HealthChecks {
			return cs[:4]
		}, []string{"b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, gotNodes := fingerprints(seed, clone(tc.edit))
			var changed []string
			for _, svc := range []string{"a", "b"} {
				if got[svc] != fps[svc] {
					changed = append(changed, svc)
				}
			}
			if !slices.Equal(changed, tc.changed) {
				t.Errorf("changed services = %v, want %v", changed, tc.changed)
			}
			if nodeChanged := !maps.Equal(gotNodes, nodes); nodeChanged != tc.nodeChanged {
				t.Errorf("node fingerprints changed = %v, want %v", nodeChanged, tc.nodeChanged)
			}
		})
	}
}

func TestCheckFilter(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, `ServiceName == ""`},
		{[]string{"b", "go.micro.srv:x", "a"}, `ServiceName == "" or ServiceName == "a" or ServiceName == "b" or ServiceName == "go.micro.srv:x"`},
	} {
		if got := checkFilter(tc.names); got != tc.want {
			t.Errorf("checkFilter(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
}
