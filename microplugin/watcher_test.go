package microplugin

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/registry/cache"

	"github.com/regchain/regchain/registry"
)

const waitFor = 10 * time.Second

type nextResult struct {
	r   *mreg.Result
	err error
}

// nextAsync calls w.Next in a goroutine.
func nextAsync(w mreg.Watcher) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		r, err := w.Next()
		ch <- nextResult{r, err}
	}()
	return ch
}

// await waits for the Next started by nextAsync; on timeout it stops the
// watcher so the goroutine ends.
func await(t *testing.T, w mreg.Watcher, ch <-chan nextResult) nextResult {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(waitFor):
		w.Stop()
		<-ch
		t.Fatalf("Next returned nothing within %v", waitFor)
		return nextResult{}
	}
}

// expect reads len(want) results and compares them as "action svc@version [ids]".
func expect(t *testing.T, w mreg.Watcher, want ...string) {
	t.Helper()
	var got []*mreg.Result
	for range want {
		res := await(t, w, nextAsync(w))
		if res.err != nil {
			t.Fatalf("Next: %v (after %q, want %q)", res.err, describe(got), want)
		}
		got = append(got, res.r)
	}
	if g := describe(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("results %q, want %q", g, want)
	}
}

func node(svc *mreg.Service, id string) *mreg.Service {
	return &mreg.Service{Name: svc.Name, Version: svc.Version, Metadata: svc.Metadata, Endpoints: svc.Endpoints,
		Nodes: []*mreg.Node{{Id: id, Address: "10.0.0.9:90", Metadata: map[string]string{"transport": "http"}}}}
}

func TestWatchService(t *testing.T) {
	p, _, _ := newPlugin(t)
	svc := greeter()
	if err := p.Register(svc); err != nil {
		t.Fatal(err)
	}
	w, err := p.Watch(mreg.WatchService(svc.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	a, b := svc.Nodes[1].Id, svc.Nodes[0].Id // sorted by ID
	expect(t, w, "create go.micro.srv.greeter@1.0.0 ["+a+" "+b+"]")

	// One change at a time.
	mustRegister(t, p, node(svc, "n-c"))
	expect(t, w, "create go.micro.srv.greeter@1.0.0 [n-c]")
	changed := node(svc, "n-c")
	changed.Nodes[0].Metadata["weight"] = "5"
	mustRegister(t, p, changed)
	expect(t, w, "update go.micro.srv.greeter@1.0.0 [n-c]")

	// Several at once, while nobody reads: nothing is lost.
	mustRegister(t, p, node(svc, "n-d"))
	mustRegister(t, p, node(svc, "n-e"))
	mustRegister(t, p, node(svc, "n-c")) // metadata back
	mustDeregister(t, p, &mreg.Service{Name: svc.Name, Nodes: []*mreg.Node{{Id: a}}})
	mustDeregister(t, p, &mreg.Service{Name: svc.Name, Nodes: []*mreg.Node{{Id: b}}})
	expect(t, w,
		"create go.micro.srv.greeter@1.0.0 [n-d n-e]",
		"update go.micro.srv.greeter@1.0.0 [n-c]",
		"delete go.micro.srv.greeter@1.0.0 ["+a+" "+b+"]")

	// Another service does not show up on this watcher: the next result is
	// this service's.
	mustRegister(t, p, &mreg.Service{Name: "other", Nodes: []*mreg.Node{{Id: "o1", Address: "h:1"}}})
	mustDeregister(t, p, node(svc, "n-d"))
	expect(t, w, "delete go.micro.srv.greeter@1.0.0 [n-d]")
}

func TestWatchAll(t *testing.T) {
	p, _, _ := newPlugin(t)
	x := &mreg.Service{Name: "x", Version: "1", Nodes: []*mreg.Node{{Id: "x1", Address: "h:1"}, {Id: "x2", Address: "h:2"}}}
	y := &mreg.Service{Name: "y", Version: "1", Nodes: []*mreg.Node{{Id: "y1", Address: "h:3"}}}
	mustRegister(t, p, x)
	mustRegister(t, p, y)
	w, err := p.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expect(t, w, "create x@1 [x1 x2]", "create y@1 [y1]")

	mustRegister(t, p, &mreg.Service{Name: "z", Version: "2", Nodes: []*mreg.Node{{Id: "z1", Address: "h:4"}}})
	expect(t, w, "create z@2 [z1]")
	mustDeregister(t, p, x)
	expect(t, w, "delete x@1 [x1 x2]")
	mustRegister(t, p, &mreg.Service{Name: "y", Version: "2", Nodes: []*mreg.Node{{Id: "y1", Address: "h:3"}}})
	expect(t, w, "create y@2 [y1]", "delete y@1 [y1]")
}

func TestWatchStop(t *testing.T) {
	p, _, _ := newPlugin(t)
	w, err := p.Watch(mreg.WatchService("s"))
	if err != nil {
		t.Fatal(err)
	}
	ch := nextAsync(w) // blocks: the service is empty
	w.Stop()
	if res := await(t, w, ch); res.err != mreg.ErrWatcherStopped {
		t.Errorf("pending Next after Stop: %v, %v; want go-micro's ErrWatcherStopped itself", res.r, res.err)
	}
	w.Stop()
	if _, err := w.Next(); err != mreg.ErrWatcherStopped {
		t.Errorf("Next after Stop: %v, want ErrWatcherStopped", err)
	}

	// Queued results are not delivered after Stop.
	mustRegister(t, p, &mreg.Service{Name: "s", Nodes: []*mreg.Node{{Id: "a", Address: "h:1"}, {Id: "b", Address: "h:2"}}})
	mustRegister(t, p, &mreg.Service{Name: "s", Version: "2", Nodes: []*mreg.Node{{Id: "c", Address: "h:3"}}})
	w, err = p.Watch(mreg.WatchService("s"))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, w, "create s@ [a b]") // "create s@2 [c]" stays queued
	w.Stop()
	if _, err := w.Next(); err != mreg.ErrWatcherStopped {
		t.Errorf("Next with a queued result after Stop: %v, want ErrWatcherStopped", err)
	}
}

func TestWatchEnds(t *testing.T) {
	t.Run("context", func(t *testing.T) {
		p, _, _ := newPlugin(t)
		ctx, cancel := context.WithCancel(context.Background())
		w, err := p.Watch(mreg.WatchService("s"), mreg.WatchContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		ch := nextAsync(w)
		cancel()
		res := await(t, w, ch)
		if !errors.Is(res.err, mreg.ErrWatcherStopped) || !errors.Is(res.err, context.Canceled) {
			t.Errorf("Next after the watch ctx is cancelled: %v, want ErrWatcherStopped and context.Canceled", res.err)
		}
	})
	t.Run("backend closed", func(t *testing.T) {
		p, mem, _ := newPlugin(t)
		w, err := p.Watch()
		if err != nil {
			t.Fatal(err)
		}
		ch := nextAsync(w)
		mem.Close()
		res := await(t, w, ch)
		if !errors.Is(res.err, mreg.ErrWatcherStopped) || !errors.Is(res.err, registry.ErrClosed) {
			t.Errorf("Next after the backend closed: %v, want ErrWatcherStopped and registry.ErrClosed", res.err)
		}
		if _, err := p.Watch(); !errors.Is(err, registry.ErrClosed) {
			t.Errorf("Watch on a closed backend: %v, want registry.ErrClosed", err)
		}
	})
	t.Run("invalid service", func(t *testing.T) {
		p, _, _ := newPlugin(t)
		if _, err := p.Watch(mreg.WatchService("bad/name")); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Watch(bad/name): %v, want registry.ErrInvalid", err)
		}
	})
}

// A backend outage is logged, not returned: the watcher goes on and diffs
// the state after the outage against the one before it.
func TestWatchSurvivesOutage(t *testing.T) {
	p, mem, rec := newPlugin(t)
	svc := &mreg.Service{Name: "s", Version: "1", Nodes: []*mreg.Node{{Id: "a", Address: "h:1"}, {Id: "b", Address: "h:2"}}}
	mustRegister(t, p, svc)
	w, err := p.Watch(mreg.WatchService("s"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	expect(t, w, "create s@1 [a b]")

	ch := nextAsync(w)
	mem.SetAvailable(false)
	waitUntil(t, "the outage is logged", func() bool { _, ok := rec.find("simulated outage"); return ok })
	mem.SetAvailable(true)
	mustDeregister(t, p, &mreg.Service{Name: "s", Nodes: []*mreg.Node{{Id: "b"}}})
	res := await(t, w, ch)
	if res.err != nil || !reflect.DeepEqual(describe([]*mreg.Result{res.r}), []string{"delete s@1 [b]"}) {
		t.Errorf("after the outage: %v, %v; want delete s@1 [b]", res.r, res.err)
	}
}

// go-micro's own registry cache (what its selector reads) follows the
// plugin's watch results.
func TestGoMicroCache(t *testing.T) {
	p, _, _ := newPlugin(t)
	svc := greeter()
	mustRegister(t, p, svc)
	c := cache.New(p, cache.WithTTL(time.Hour))
	defer c.Stop()
	nodes := func() []string {
		svcs, err := c.GetService(svc.Name)
		if err != nil {
			t.Fatalf("cache GetService: %v", err)
		}
		var ids []string
		for _, s := range svcs {
			for _, n := range s.Nodes {
				ids = append(ids, n.Id)
			}
		}
		return ids
	}
	if got := nodes(); len(got) != 2 {
		t.Fatalf("cache has %v, want 2 nodes", got)
	}
	mustRegister(t, p, node(svc, "n-c"))
	waitUntil(t, "the cache sees the new node", func() bool { return len(nodes()) == 3 })
	mustDeregister(t, p, &mreg.Service{Name: svc.Name, Nodes: []*mreg.Node{{Id: svc.Nodes[0].Id}, {Id: svc.Nodes[1].Id}}})
	waitUntil(t, "the cache drops the removed nodes", func() bool { return reflect.DeepEqual(nodes(), []string{"n-c"}) })
}

func mustRegister(t testing.TB, p *Registry, svc *mreg.Service) {
	t.Helper()
	if err := p.Register(svc); err != nil {
		t.Fatalf("Register %s: %v", svc.Name, err)
	}
}

func mustDeregister(t testing.TB, p *Registry, svc *mreg.Service) {
	t.Helper()
	if err := p.Deregister(svc); err != nil {
		t.Fatalf("Deregister %s: %v", svc.Name, err)
	}
}

// waitUntil polls cond until it holds or waitFor passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}
