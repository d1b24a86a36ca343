package chain_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// deaf is a tier that answers probes but whose reads fail and whose
// watches never deliver: up as far as the circuit breaker knows, useless
// to a service.
type deaf struct{ *registrytest.Memory }

func (d deaf) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	return nil, fmt.Errorf("deaf: %w: no answer", registry.ErrUnavailable)
}

func (d deaf) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	return registry.NewFeed(ctx, nil), nil
}

// slowRead is a tier whose GetService, once armed, reads the state and
// then waits for release before returning it: a read that crosses a
// change in the tier.
type slowRead struct {
	*registrytest.Memory
	armed   atomic.Bool
	entered chan struct{} // receives once per gated read
	release chan struct{}
}

func newSlowRead(name string) *slowRead {
	return &slowRead{Memory: registrytest.NewMemoryNamed(name), entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (s *slowRead) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	got, err := s.Memory.GetService(ctx, name)
	if s.armed.Load() {
		s.entered <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return got, err
}

// slowWatch is a tier whose Watch does its I/O within the call, as some
// registries do (a first read before returning the watcher), and here
// never gets an answer: it returns only when its ctx is done.
type slowWatch struct{ *registrytest.Memory }

func (s slowWatch) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("slowWatch: watch: %w", ctx.Err())
}

// lagWatch is a tier whose Watch takes a while to return, like a remote
// registry compared with a local one.
type lagWatch struct {
	*registrytest.Memory
	lag time.Duration
}

func (l lagWatch) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	timer := time.NewTimer(l.lag)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return l.Memory.Watch(ctx, name)
}

// nilInstances is a buggy tier whose reads and watch states contain a nil
// Instance next to real ones.
type nilInstances struct{ *registrytest.Memory }

func (n nilInstances) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	got, err := n.Memory.GetService(ctx, name)
	return append([]*registry.Instance{nil}, got...), err
}

func (n nilInstances) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := n.Memory.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	return nilWatcher{w}, nil
}

type nilWatcher struct{ registry.Watcher }

func (w nilWatcher) Next() (*registry.Update, error) {
	u, err := w.Watcher.Next()
	if u != nil {
		u.Instances = append(u.Instances, nil)
	}
	return u, err
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

// flaky wraps a Memory tier: its writes fail with ErrUnavailable while
// failWrites > 0 (its probes still succeed), and it counts calls.
type flaky struct {
	*registrytest.Memory
	mu         sync.Mutex
	failWrites int
	registers  []time.Time
	gets       int
}

func (f *flaky) Register(ctx context.Context, in *registry.Instance) error {
	f.mu.Lock()
	f.registers = append(f.registers, time.Now())
	fail := f.failWrites > 0
	if fail {
		f.failWrites--
	}
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("flaky: %w: write refused", registry.ErrUnavailable)
	}
	return f.Memory.Register(ctx, in)
}

func (f *flaky) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	f.mu.Lock()
	f.gets++
	f.mu.Unlock()
	return f.Memory.GetService(ctx, name)
}

func (f *flaky) calls() (registers []time.Time, gets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.registers...), f.gets
}

// slowWrites is a tier whose writes take a different time each, so that
// concurrent writes of one instance overlap and could land out of order.
type slowWrites struct {
	*registrytest.Memory
	n atomic.Int64
}

func (s *slowWrites) lag(ctx context.Context) error {
	d := time.Duration(s.n.Add(1)*7%23) * time.Millisecond
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowWrites) Register(ctx context.Context, in *registry.Instance) error {
	if err := s.lag(ctx); err != nil {
		return err
	}
	return s.Memory.Register(ctx, in)
}

func (s *slowWrites) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := s.lag(ctx); err != nil {
		return err
	}
	return s.Memory.Deregister(ctx, in)
}

// hang is a tier whose writes never answer: they return only when their
// ctx is done.
type hang struct{ *registrytest.Memory }

func (h hang) Register(ctx context.Context, in *registry.Instance) error {
	<-ctx.Done()
	return ctx.Err()
}

func (h hang) Deregister(ctx context.Context, in *registry.Instance) error {
	<-ctx.Done()
	return ctx.Err()
}

// sticky is a registry whose Deregister succeeds but removes nothing: a
// drain against it never sees the instance go.
type sticky struct{ *registrytest.Memory }

func (sticky) Deregister(context.Context, *registry.Instance) error { return nil }

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

// TestChainAsTier: a chain used as another chain's tier is seen down when
// none of its own tiers is up, so the outer chain fails over to its next
// tier instead of serving the inner chain's frozen memory.
func TestChainAsTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m1, m2 := registrytest.NewMemoryNamed("m1"), registrytest.NewMemoryNamed("m2")
		inner := newChain(t, []chain.Tier{{Name: "m1", Registry: m1}}, fastHealth...)
		outer := newChain(t, []chain.Tier{{Name: "inner", Registry: inner}, {Name: "m2", Registry: m2}}, fastHealth...)
		if err := outer.Register(ctx, inst("svc", "a1", 9001)); err != nil {
			t.Fatal(err)
		}
		p := startPump(t, outer, "svc")
		synctest.Wait()
		p.expect(t, "inner", "a1")
		m1.SetAvailable(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if tierStatus(outer, "inner").Up {
			t.Errorf("the inner chain, all of whose tiers are down, is still up for the outer chain")
		}
		if err := outer.Register(ctx, inst("svc", "a2", 9002)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		p.expect(t, "m2", "a1", "a2")
	})
}

// TestCloseWithBlockingTierWatch: Close stops every goroutine even when a
// tier's Watch call is still in flight: the call gets a ctx that the chain
// cancels.
func TestCloseWithBlockingTierWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := registrytest.NewMemoryNamed("m")
		c := newChain(t, []chain.Tier{{Name: "slow", Registry: slowWatch{m}}})
		w, err := c.Watch(context.Background(), "svc")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		synctest.Wait()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		default:
			t.Fatal("Close blocks on a tier's Watch call in flight")
		}
	})
}

// TestNilInstanceFromTier: a nil Instance from a tier is dropped, not a
// crash of the chain.
func TestNilInstanceFromTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := registrytest.NewMemoryNamed("m")
		m.Register(ctx, inst("svc", "b", 9002))
		m.Register(ctx, inst("svc", "a", 9001))
		c := newChain(t, []chain.Tier{{Name: "bad", Registry: nilInstances{m}}})
		mustGet(t, c, "svc", "a", "b")
		p := startPump(t, c, "svc")
		m.Register(ctx, inst("svc", "c", 9003))
		synctest.Wait()
		p.expect(t, "bad", "a", "b", "c")
		v, err := c.Lookup(ctx, "svc")
		if err != nil || v.Len() != 3 || v.At(0).ID != "a" {
			t.Errorf("Lookup = %d instances, %v; want a, b, c sorted", v.Len(), err)
		}
	})
}
