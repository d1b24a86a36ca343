package grpcresolver_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/regchain/regchain/grpcresolver"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func inst(id, addr string, md map[string]string) *registry.Instance {
	return &registry.Instance{ID: id, Name: "greeter", Version: "v2", Metadata: md,
		Endpoints: []string{"grpc://" + addr + "?isSecure=false", "http://" + addr}}
}

func register(t *testing.T, r registry.Registry, ins ...*registry.Instance) {
	t.Helper()
	for _, in := range ins {
		if err := r.Register(context.Background(), in); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
}

func waitStates(t *testing.T, cc *fakeCC, n int) resolver.State {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, "states pushed", func() string {
		if got, _ := cc.counts(); got < n {
			return "fewer states than wanted"
		}
		return ""
	})
	return cc.lastState()
}

func TestAddressesAndAttributes(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	register(t, mem,
		inst("a", "127.0.0.1:9001", map[string]string{"weight": "30", "zone": "z1"}),
		inst("b", "127.0.0.1:9002", nil),
		&registry.Instance{ID: "c", Name: "greeter", Endpoints: []string{"http://127.0.0.1:9003"}})
	cc := newFakeCC()
	r, err := grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(quietLogger())).Build(target("greeter"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st := waitStates(t, cc, 1)
	if len(st.Endpoints) != 2 || len(st.Addresses) != 2 {
		t.Fatalf("got %d endpoints, %d addresses; want 2, 2 (the http-only instance left out)", len(st.Endpoints), len(st.Addresses))
	}
	if got := st.Addresses[0].Addr; got != "127.0.0.1:9001" {
		t.Errorf("address = %q, want 127.0.0.1:9001", got)
	}
	info := grpcresolver.InfoFromAddress(st.Addresses[0])
	if info == nil || info.ID != "a" || info.Version != "v2" || info.Weight != 30 || info.Metadata["zone"] != "z1" {
		t.Errorf("info = %+v, want a@v2 weight 30 zone z1", info)
	}
	if e := grpcresolver.InfoFromEndpoint(st.Endpoints[1]); e == nil || e.ID != "b" || e.Weight != 0 {
		t.Errorf("endpoint info = %+v, want b, weight 0", e)
	}
}

func TestBadTarget(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	_, err := grpcresolver.NewBuilder(mem).Build(target(""), newFakeCC(), resolver.BuildOptions{})
	if !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("Build with no name: err = %v, want ErrInvalid", err)
	}
}

// An outage after a good state pushes nothing and reports nothing; before
// any good state, the error is reported.
func TestErrorsKeepLastState(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	b := grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(quietLogger()))

	mem.SetAvailable(false)
	cold := newFakeCC()
	r1, err := b.Build(target("greeter"), cold, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	testutil.WaitFor(t, 5*time.Second, "error reported with nothing known", func() string {
		if _, e := cold.counts(); e == 0 {
			return "no ReportError"
		}
		return ""
	})
	mem.SetAvailable(true)
	register(t, mem, inst("a", "127.0.0.1:9001", nil))
	if st := waitStates(t, cold, 1); len(st.Addresses) != 1 {
		t.Fatalf("after recovery: %d addresses, want 1", len(st.Addresses))
	}

	warm := newFakeCC()
	r2, err := b.Build(target("greeter"), warm, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	waitStates(t, warm, 1)
	_, errsBefore := cold.counts()
	mem.SetAvailable(false)
	mem.SetAvailable(true)
	register(t, mem, inst("b", "127.0.0.1:9002", nil))
	st := waitStates(t, warm, 2)
	if len(st.Addresses) != 2 {
		t.Fatalf("got %d addresses, want 2", len(st.Addresses))
	}
	states, errs := warm.counts()
	if states != 2 || errs != 0 {
		t.Errorf("warm resolver: %d states, %d errors; want 2 states (no empty push), 0 errors", states, errs)
	}
	if _, e := cold.counts(); e != errsBefore {
		t.Errorf("cold resolver reported %d more errors after it had a good state", e-errsBefore)
	}
}

// An authoritative empty state is pushed at once by default; identical
// states are pushed once.
func TestEmptyPushedAtOnce(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	a := inst("a", "127.0.0.1:9001", nil)
	register(t, mem, a)
	cc := newFakeCC()
	r, err := grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(quietLogger())).Build(target("greeter"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitStates(t, cc, 1)
	if err := mem.Deregister(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if st := waitStates(t, cc, 2); len(st.Addresses) != 0 || len(st.Endpoints) != 0 {
		t.Fatalf("after the last instance left: %v, want an empty list", st.Addresses)
	}
	register(t, mem, a)
	waitStates(t, cc, 3)
	// Metadata that does not touch the grpc address still is a new state;
	// re-registering the same instance is not.
	register(t, mem, a)
	a2 := a.Clone()
	a2.Metadata = map[string]string{"weight": "5"}
	register(t, mem, a2)
	st := waitStates(t, cc, 4)
	if got := grpcresolver.InfoFromAddress(st.Addresses[0]).Weight; got != 5 {
		t.Errorf("weight = %d, want 5", got)
	}
	if n, _ := cc.counts(); n != 4 {
		t.Errorf("%d states pushed, want 4", n)
	}
}

// With WithEmptyDelay, an empty state is pushed only once it has lasted
// the delay; a non-empty state within it cancels the push.
func TestEmptyDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := registrytest.NewMemory()
		defer mem.Close()
		a := inst("a", "127.0.0.1:9001", nil)
		register(t, mem, a)
		cc := newFakeCC()
		b := grpcresolver.NewBuilder(mem, grpcresolver.WithLogger(quietLogger()), grpcresolver.WithEmptyDelay(10*time.Second))
		r, err := b.Build(target("greeter"), cc, resolver.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		synctest.Wait()
		mem.Deregister(context.Background(), a)
		synctest.Wait()
		time.Sleep(9 * time.Second)
		register(t, mem, a)
		synctest.Wait()
		if n, _ := cc.counts(); n != 1 {
			t.Fatalf("%d states after a 9s gap, want 1 (the empty state held)", n)
		}
		mem.Deregister(context.Background(), a)
		synctest.Wait()
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if n, _ := cc.counts(); n != 2 {
			t.Fatalf("%d states after 10s empty, want 2", n)
		}
		if st := cc.lastState(); len(st.Addresses) != 0 {
			t.Fatalf("last state has %d addresses, want 0", len(st.Addresses))
		}
	})
}

// Close stops the watcher; a new Build (grpc-go leaving idle mode) watches
// again; no call reaches the ClientConn after Close.
func TestCloseAndRebuild(t *testing.T) {
	mem := registrytest.NewMemory()
	defer mem.Close()
	reg := &countingRegistry{Registry: mem}
	register(t, mem, inst("a", "127.0.0.1:9001", nil))
	b := grpcresolver.NewBuilder(reg, grpcresolver.WithLogger(quietLogger()))
	for i := range 3 {
		cc := newFakeCC()
		r, err := b.Build(target("greeter"), cc, resolver.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitStates(t, cc, 1)
		if n := reg.live.Load(); n != 1 {
			t.Fatalf("build %d: %d live watchers, want 1", i, n)
		}
		r.Close()
		r.Close() // idempotent
		if n := reg.live.Load(); n != 0 {
			t.Fatalf("after Close: %d live watchers, want 0", n)
		}
		before, _ := cc.counts()
		register(t, mem, inst("x"+string(rune('0'+i)), "127.0.0.1:9100", nil))
		if after, _ := cc.counts(); after != before {
			t.Fatalf("a state reached the ClientConn after Close")
		}
	}
}
