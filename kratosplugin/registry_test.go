package kratosplugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func kratosInstance(id string, port int) *kratosregistry.ServiceInstance {
	return &kratosregistry.ServiceInstance{
		ID:       id,
		Name:     "greeter",
		Version:  "v1.2.3",
		Metadata: map[string]string{"weight": "42", "zone": "eu-1"},
		Endpoints: []string{
			fmt.Sprintf("http://127.0.0.1:%d", port+1),
			fmt.Sprintf("grpc://127.0.0.1:%d?isSecure=false", port),
		},
	}
}

func newMemory(t *testing.T) *registrytest.Memory {
	m := registrytest.NewMemory()
	t.Cleanup(func() { m.Close() })
	return m
}

func TestConvertFieldForField(t *testing.T) {
	si := kratosInstance("a", 9000)
	in := kratosplugin.ToInstance(si)
	kj, err := json.Marshal(si)
	if err != nil {
		t.Fatal(err)
	}
	rj, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(kj) != string(rj) {
		t.Fatalf("JSON differs:\nkratos:   %s\nregchain: %s", kj, rj)
	}
	back := kratosplugin.FromInstance(in)
	bj, _ := json.Marshal(back)
	if string(bj) != string(kj) {
		t.Fatalf("round trip JSON = %s, want %s", bj, kj)
	}

	// Copies, not shared storage, in both directions.
	in.Metadata["weight"] = "1"
	in.Endpoints[0] = "http://changed:1"
	if si.Metadata["weight"] != "42" || si.Endpoints[0] != "http://127.0.0.1:9001" {
		t.Fatalf("ToInstance shares storage with its argument: %+v", si)
	}
	back.Metadata["zone"] = "x"
	slices.Sort(back.Endpoints)
	if in.Metadata["zone"] != "eu-1" || in.Endpoints[0] != "http://changed:1" {
		t.Fatalf("FromInstance shares storage with its argument: %+v", in)
	}

	if kratosplugin.ToInstance(nil) != nil || kratosplugin.FromInstance(nil) != nil {
		t.Fatal("conversion of nil is not nil")
	}
	// Nil metadata stays nil (the JSON says null on both sides).
	bare := &kratosregistry.ServiceInstance{ID: "b", Name: "greeter", Endpoints: []string{"grpc://h:1"}}
	kj, _ = json.Marshal(bare)
	rj, _ = json.Marshal(kratosplugin.ToInstance(bare))
	if string(kj) != string(rj) {
		t.Fatalf("bare instance JSON differs:\nkratos:   %s\nregchain: %s", kj, rj)
	}
}

func TestRegisterOutlivesContext(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)
	si := kratosInstance("a", 9000)

	// Kratos' App registers with a 10 s context that ends soon after.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := p.Register(ctx, si); err != nil {
		t.Fatalf("Register: %v", err)
	}
	cancel()

	got, err := mem.GetService(ctxT(t), "greeter")
	if err != nil {
		t.Fatalf("GetService after the register ctx ended: %v", err)
	}
	want := kratosplugin.ToInstance(si)
	if len(got) != 1 || !got[0].Equal(want) {
		t.Fatalf("registered %v, want exactly %v with metadata %v", got, want, want.Metadata)
	}
	if got[0].Version != "v1.2.3" || got[0].Metadata["weight"] != "42" {
		t.Fatalf("version/metadata not passed through: %+v", got[0])
	}

	if err := p.Deregister(ctxT(t), &kratosregistry.ServiceInstance{ID: "a", Name: "greeter"}); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if _, err := mem.GetService(ctxT(t), "greeter"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetService after Deregister: err = %v, want ErrNotFound", err)
	}
}

func TestRegisterErrors(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)
	if err := p.Register(ctxT(t), nil); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register(nil) = %v, want ErrInvalid", err)
	}
	if err := p.Deregister(ctxT(t), nil); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Deregister(nil) = %v, want ErrInvalid", err)
	}
	noName := kratosInstance("a", 9000)
	noName.Name = ""
	if err := p.Register(ctxT(t), noName); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register without a name = %v, want ErrInvalid", err)
	}
	mem.SetAvailable(false)
	if err := p.Register(ctxT(t), kratosInstance("a", 9000)); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Register during an outage = %v, want ErrUnavailable", err)
	}
}

func TestGetService(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)

	// Unknown service: an empty list and no error, as Kratos' contrib etcd
	// registry answers.
	got, err := p.GetService(ctxT(t), "greeter")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("GetService(unknown) = %v (nil: %t), %v; want an empty list and nil", got, got == nil, err)
	}

	for i, id := range []string{"b", "a"} {
		if err := p.Register(ctxT(t), kratosInstance(id, 9000+10*i)); err != nil {
			t.Fatal(err)
		}
	}
	got, err = p.GetService(ctxT(t), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if ids(got) != "[a b]" {
		t.Fatalf("GetService = %s, want [a b]", ids(got))
	}
	if got[0].Version != "v1.2.3" || got[0].Metadata["weight"] != "42" {
		t.Fatalf("version/metadata not passed through: %+v", got[0])
	}
	// The caller owns the result: Kratos' Equal sorts endpoints in place.
	got[0].Equal(got[1])
	got[0].Metadata["weight"] = "0"
	again, _ := p.GetService(ctxT(t), "greeter")
	if again[0].Metadata["weight"] != "42" || again[0].Endpoints[0] != "http://127.0.0.1:9011" {
		t.Fatalf("GetService returned shared storage: %+v", again[0])
	}

	// A failure other than "not found" is an error.
	mem.SetAvailable(false)
	if _, err := p.GetService(ctxT(t), "greeter"); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("GetService during an outage: err = %v, want ErrUnavailable", err)
	}
}

func TestNextFirstThenChanges(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)
	if err := p.Register(ctxT(t), kratosInstance("a", 9000)); err != nil {
		t.Fatal(err)
	}
	w, err := p.Watch(ctxT(t), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	first := receive(t, nextAsync(w))
	if first.err != nil || ids(first.list) != "[a]" {
		t.Fatalf("first Next = %s, %v; want [a]", ids(first.list), first.err)
	}
	if first.list[0].Version != "v1.2.3" || first.list[0].Metadata["weight"] != "42" {
		t.Fatalf("version/metadata not passed through: %+v", first.list[0])
	}
	// Kratos' resolver compares with Equal, which sorts endpoint slices in
	// place; mutate freely, the next list must not be affected.
	first.list[0].Equal(kratosInstance("a", 9000))
	first.list[0].Metadata["weight"] = "0"

	ch := nextAsync(w)
	blocked(t, ch, 100*time.Millisecond)
	// Re-registering the same instance changes nothing: still blocked.
	if err := p.Register(ctxT(t), kratosInstance("a", 9000)); err != nil {
		t.Fatal(err)
	}
	blocked(t, ch, 100*time.Millisecond)

	if err := p.Register(ctxT(t), kratosInstance("b", 9010)); err != nil {
		t.Fatal(err)
	}
	r := receive(t, ch)
	if r.err != nil || ids(r.list) != "[a b]" {
		t.Fatalf("Next after a registration = %s, %v; want the full list [a b]", ids(r.list), r.err)
	}
	a := r.list[0]
	if a.Metadata["weight"] != "42" || !a.Equal(kratosInstance("a", 9000)) {
		t.Fatalf("instance a changed by the caller's mutation of an earlier list: %+v", a)
	}

	if err := p.Deregister(ctxT(t), kratosInstance("a", 9000)); err != nil {
		t.Fatal(err)
	}
	r = receive(t, nextAsync(w))
	if r.err != nil || ids(r.list) != "[b]" {
		t.Fatalf("Next after a deregistration = %s, %v; want [b]", ids(r.list), r.err)
	}
	if err := p.Deregister(ctxT(t), kratosInstance("b", 9010)); err != nil {
		t.Fatal(err)
	}
	r = receive(t, nextAsync(w))
	if r.err != nil || r.list == nil || len(r.list) != 0 {
		t.Fatalf("Next after the last deregistration = %v, %v; want an empty list", r.list, r.err)
	}
}

func TestFirstNextEmpty(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)
	w, err := p.Watch(ctxT(t), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	r := receive(t, nextAsync(w))
	if r.err != nil || r.list == nil || len(r.list) != 0 {
		t.Fatalf("first Next of an unknown service = %v, %v; want an empty list at once", r.list, r.err)
	}
}

// exitsKratosLoop reports whether err ends Kratos' resolver loops: v2.9.2's
// gRPC (transport/grpc/resolver/discovery) and HTTP (transport/http) resolvers
// return on errors.Is(err, context.Canceled) and otherwise log, sleep 1 s and
// call Next again.
func exitsKratosLoop(err error) bool { return errors.Is(err, context.Canceled) }

func TestStopUnblocksNextAndWatchAgain(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)
	if err := p.Register(ctxT(t), kratosInstance("a", 9000)); err != nil {
		t.Fatal(err)
	}
	for round := range 3 { // gRPC idle mode closes and rebuilds resolvers
		w, err := p.Watch(ctxT(t), "greeter")
		if err != nil {
			t.Fatalf("round %d: Watch: %v", round, err)
		}
		r := receive(t, nextAsync(w))
		if r.err != nil || ids(r.list) != "[a]" {
			t.Fatalf("round %d: first Next = %s, %v; want [a]", round, ids(r.list), r.err)
		}
		ch := nextAsync(w)
		blocked(t, ch, 50*time.Millisecond)
		if err := w.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		r = receive(t, ch)
		if r.err == nil || !exitsKratosLoop(r.err) || !errors.Is(r.err, registry.ErrStopped) {
			t.Fatalf("round %d: Next after Stop = %v; want an error wrapping context.Canceled and ErrStopped", round, r.err)
		}
		// Stop is idempotent and Next keeps failing the same way.
		w.Stop()
		if _, err := w.Next(); !exitsKratosLoop(err) {
			t.Fatalf("round %d: second Next after Stop = %v", round, err)
		}
	}
}

func TestWatchContextEnds(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(mem)
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			w, err := p.Watch(ctx, "greeter")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			if r := receive(t, nextAsync(w)); r.err != nil {
				t.Fatalf("first Next: %v", r.err)
			}
			ch := nextAsync(w)
			if tc.name == "cancel" {
				cancel()
			}
			// Even a deadline must end Kratos' loop rather than have it retry
			// every second forever.
			if r := receive(t, ch); !exitsKratosLoop(r.err) || !errors.Is(r.err, registry.ErrStopped) {
				t.Fatalf("Next after the Watch ctx ended = %v; want context.Canceled and ErrStopped", r.err)
			}
		})
	}
}

func TestRegistryClosed(t *testing.T) {
	mem := registrytest.NewMemory()
	p := kratosplugin.New(mem)
	w, err := p.Watch(ctxT(t), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if r := receive(t, nextAsync(w)); r.err != nil {
		t.Fatalf("first Next: %v", r.err)
	}
	ch := nextAsync(w)
	mem.Close()
	if r := receive(t, ch); !exitsKratosLoop(r.err) || !errors.Is(r.err, registry.ErrClosed) {
		t.Fatalf("Next after Close = %v; want context.Canceled and ErrClosed", r.err)
	}
	if _, err := p.Watch(ctxT(t), "greeter"); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Watch on a closed registry = %v, want ErrClosed", err)
	}
}

func TestWatchInvalidName(t *testing.T) {
	p := kratosplugin.New(newMemory(t))
	for _, name := range []string{"", "a/b", "-x"} {
		if _, err := p.Watch(ctxT(t), name); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Watch(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

func TestWatchDuringOutage(t *testing.T) {
	mem := newMemory(t)
	logs := &recordingLogger{}
	p := kratosplugin.New(mem, kratosplugin.WithLogger(logs))
	if err := p.Register(ctxT(t), kratosInstance("a", 9000)); err != nil {
		t.Fatal(err)
	}
	mem.SetAvailable(false)

	start := time.Now()
	w, err := p.Watch(ctxT(t), "greeter")
	if err != nil {
		t.Fatalf("Watch during an outage: %v", err)
	}
	defer w.Stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Watch took %v during an outage; Kratos' gRPC resolver allows about 2s", d)
	}
	// The transient error is logged, not returned: Next waits for a state.
	ch := nextAsync(w)
	eventually(t, "outage logged", func() string {
		if logs.count() == 0 {
			return "nothing logged"
		}
		return ""
	})
	blocked(t, ch, 50*time.Millisecond)
	mem.SetAvailable(true)
	if r := receive(t, ch); r.err != nil || ids(r.list) != "[a]" {
		t.Fatalf("Next once the backend is back = %s, %v; want [a]", ids(r.list), r.err)
	}
}

func TestTransientErrorsDoNotEndWatch(t *testing.T) {
	mem := newMemory(t)
	logs := &recordingLogger{}
	p := kratosplugin.New(mem, kratosplugin.WithLogger(logs))
	w := watchWithA(t, p)
	ch := nextAsync(w)
	for range 3 {
		mem.SetAvailable(false)
		eventually(t, "outage logged", func() string {
			if logs.count() == 0 {
				return "nothing logged"
			}
			return ""
		})
		// Back with the same state: nothing new for Kratos.
		mem.SetAvailable(true)
	}
	blocked(t, ch, 50*time.Millisecond)
	if err := p.Register(ctxT(t), kratosInstance("b", 9010)); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, ch); r.err != nil || ids(r.list) != "[a b]" {
		t.Fatalf("Next after outages and a change = %s, %v; want [a b]", ids(r.list), r.err)
	}
}

// stubbornWatch is a registry whose Watch misbehaves the way a backend
// that connects inside Watch does: it fails with ErrUnavailable a number of
// times, then blocks until released. The plugin must still return from
// Watch at once.
type stubbornWatch struct {
	*registrytest.Memory
	fails   atomic.Int32
	calls   atomic.Int32
	release chan struct{}
}

func (s *stubbornWatch) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	s.calls.Add(1)
	if s.fails.Add(-1) >= 0 {
		return nil, fmt.Errorf("stubborn: %w: connection refused", registry.ErrUnavailable)
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, fmt.Errorf("stubborn: %w", ctx.Err())
	}
	return s.Memory.Watch(ctx, name)
}

func TestWatchReturnsAtOnceOverBlockingBackend(t *testing.T) {
	mem := newMemory(t)
	if err := mem.Register(ctxT(t), kratosplugin.ToInstance(kratosInstance("a", 9000))); err != nil {
		t.Fatal(err)
	}

	t.Run("released", func(t *testing.T) {
		s := &stubbornWatch{Memory: mem, release: make(chan struct{})}
		s.fails.Store(2)
		p := kratosplugin.New(s, kratosplugin.WithLogger(&recordingLogger{}))
		start := time.Now()
		w, err := p.Watch(ctxT(t), "greeter")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		defer w.Stop()
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Watch over a blocking backend took %v", d)
		}
		ch := nextAsync(w)
		eventually(t, "Watch retried after ErrUnavailable", func() string {
			if n := s.calls.Load(); n < 3 {
				return fmt.Sprintf("%d calls", n)
			}
			return ""
		})
		blocked(t, ch, 50*time.Millisecond)
		close(s.release)
		if r := receive(t, ch); r.err != nil || ids(r.list) != "[a]" {
			t.Fatalf("Next once Watch got through = %s, %v; want [a]", ids(r.list), r.err)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		s := &stubbornWatch{Memory: mem, release: make(chan struct{})}
		p := kratosplugin.New(s)
		w, err := p.Watch(ctxT(t), "greeter")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		ch := nextAsync(w)
		blocked(t, ch, 50*time.Millisecond)
		// Kratos' resolver Close: Stop ends the pending creation too
		// (goleak checks its goroutine is gone).
		w.Stop()
		if r := receive(t, ch); !exitsKratosLoop(r.err) {
			t.Fatalf("Next after Stop = %v, want context.Canceled", r.err)
		}
	})
}

// timingOut is a registry whose watchers return, once, a transient error
// that wraps context.DeadlineExceeded, as the chain's does when every
// tier's call timed out: not the end of the watch (registry.Watcher's
// contract: terminal errors match ErrStopped).
type timingOut struct{ *registrytest.Memory }

func (t timingOut) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := t.Memory.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	return &timingOutWatcher{Watcher: w}, nil
}

type timingOutWatcher struct {
	registry.Watcher
	calls int
}

func (w *timingOutWatcher) Next() (*registry.Update, error) {
	if w.calls++; w.calls == 2 {
		return nil, fmt.Errorf("chain: get %q: %w: tier call timed out: %w", "greeter", registry.ErrUnavailable, context.DeadlineExceeded)
	}
	return w.Watcher.Next()
}

func TestTimeoutErrorsDoNotEndWatch(t *testing.T) {
	mem := newMemory(t)
	p := kratosplugin.New(timingOut{mem})
	w := watchWithA(t, p)
	ch := nextAsync(w) // meets the timeout error, then waits
	if err := p.Register(ctxT(t), kratosInstance("b", 9010)); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, ch); r.err != nil || ids(r.list) != "[a b]" {
		t.Fatalf("Next after a timed-out read and a change = %s, %v; want [a b]", ids(r.list), r.err)
	}
}

// watchWithA registers instance a of greeter through p, watches greeter
// and checks the first Next; the watcher stops with the test.
func watchWithA(t *testing.T, p *kratosplugin.Registry) kratosregistry.Watcher {
	t.Helper()
	if err := p.Register(ctxT(t), kratosInstance("a", 9000)); err != nil {
		t.Fatal(err)
	}
	w, err := p.Watch(ctxT(t), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	if r := receive(t, nextAsync(w)); r.err != nil || ids(r.list) != "[a]" {
		t.Fatalf("first Next = %s, %v", ids(r.list), r.err)
	}
	return w
}
