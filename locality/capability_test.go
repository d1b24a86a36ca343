package locality_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// full is a Memory with every optional capability a wrapper mirrors: a
// Pinger (Memory's), a RegistrationReporter and a TTLRegistrar recording
// what reached them, and a Validator refusing a zone named "refused".
type full struct {
	*registrytest.Memory
	ttls atomic.Int64
}

func (f *full) Registrations() []registry.RegistrationState {
	return []registry.RegistrationState{{Instance: &registry.Instance{ID: "r", Name: "reported"}, Live: true}}
}

func (f *full) RegisterTTL(ctx context.Context, in *registry.Instance, ttl time.Duration) error {
	f.ttls.Add(int64(ttl))
	return f.Register(ctx, in)
}

func (f *full) ValidateInstance(in *registry.Instance) error {
	if in.Metadata[locality.KeyZone] == "refused" {
		return fmt.Errorf("%w: zone refused", registry.ErrInvalid)
	}
	return f.Memory.ValidateInstance(in)
}

// unnotified hides a watcher's Notifier.
type unnotified struct{ registry.Watcher }

// inner builds a registry over f with the capabilities named in has
// ("ping", "report", "ttl", "notify") and no others but Validator.
func inner(f *full, has string) registry.Registry {
	var r registry.Registry = f
	if !strings.Contains(has, "notify") {
		r = plainWatch{f}
	}
	p, rr, tt := strings.Contains(has, "ping"), strings.Contains(has, "report"), strings.Contains(has, "ttl")
	switch {
	case p && rr && tt:
		return struct {
			registry.Registry
			registry.Validator
			registry.Pinger
			registry.RegistrationReporter
			registry.TTLRegistrar
		}{r, f, f, f, f}
	case p && rr:
		return struct {
			registry.Registry
			registry.Validator
			registry.Pinger
			registry.RegistrationReporter
		}{r, f, f, f}
	case p && tt:
		return struct {
			registry.Registry
			registry.Validator
			registry.Pinger
			registry.TTLRegistrar
		}{r, f, f, f}
	case rr && tt:
		return struct {
			registry.Registry
			registry.Validator
			registry.RegistrationReporter
			registry.TTLRegistrar
		}{r, f, f, f}
	case p:
		return struct {
			registry.Registry
			registry.Validator
			registry.Pinger
		}{r, f, f}
	case rr:
		return struct {
			registry.Registry
			registry.Validator
			registry.RegistrationReporter
		}{r, f, f}
	case tt:
		return struct {
			registry.Registry
			registry.Validator
			registry.TTLRegistrar
		}{r, f, f}
	}
	return struct {
		registry.Registry
		registry.Validator
	}{r, f}
}

// plainWatch hides the Notifier of its watchers.
type plainWatch struct{ registry.Registry }

func (p plainWatch) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	w, err := p.Registry.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	return unnotified{w}, nil
}

// A wrapper has every optional capability of the registry it wraps, and
// each works through it: Ping, Registrations and RegisterTTL (stamped)
// exactly when the wrapped registry has them; SharedReader, Deriver and
// Validator (of the stamped instance) always; watchers that are Notifiers
// exactly when the wrapped registry's are.
func TestWrapCapabilities(t *testing.T) {
	t.Setenv(locality.EnvZone, "")
	t.Setenv(locality.EnvRegion, "")
	ctx := context.Background()
	self := locality.Locality{Zone: "z1", Region: "r1"}
	for _, has := range []string{"", "ping", "report", "ttl", "notify", "ping report", "ping ttl", "report ttl", "ping report ttl notify"} {
		t.Run(strings.ReplaceAll("with "+has, " ", "_"), func(t *testing.T) {
			f := &full{Memory: registrytest.NewMemory()}
			defer f.Close()
			w := locality.Wrap(inner(f, has), locality.Config{Self: self})
			defer w.Close()

			p, ok := w.(registry.Pinger)
			if ok != strings.Contains(has, "ping") {
				t.Errorf("Pinger: %v", ok)
			} else if ok {
				if err := p.Ping(ctx); err != nil {
					t.Errorf("Ping: %v", err)
				}
			}
			rr, ok := w.(registry.RegistrationReporter)
			if ok != strings.Contains(has, "report") {
				t.Errorf("RegistrationReporter: %v", ok)
			} else if ok {
				if got := rr.Registrations(); len(got) != 1 || got[0].Instance.Name != "reported" {
					t.Errorf("Registrations = %v", got)
				}
			}
			tr, ok := w.(registry.TTLRegistrar)
			if ok != strings.Contains(has, "ttl") {
				t.Errorf("TTLRegistrar: %v", ok)
			} else if ok {
				in := &registry.Instance{ID: "t1", Name: "svc", Endpoints: []string{"grpc://127.0.0.1:1"}}
				if err := tr.RegisterTTL(ctx, in, 7*time.Second); err != nil || f.ttls.Load() != int64(7*time.Second) {
					t.Fatalf("RegisterTTL = %v; the wrapped registry got ttl %v", err, time.Duration(f.ttls.Load()))
				}
				if got, err := f.GetService(ctx, "svc"); err != nil || locality.Of(got[0]) != self {
					t.Errorf("registered through RegisterTTL: %v, %v; want it stamped %+v", got, err, self)
				}
			}
			if _, ok := w.(registry.SharedReader); !ok {
				t.Error("not a SharedReader")
			}
			if _, ok := w.(registry.Deriver); !ok {
				t.Error("not a Deriver")
			}
			v, ok := w.(registry.Validator)
			if !ok {
				t.Fatal("not a Validator")
			}
			good := &registry.Instance{ID: "v1", Name: "svc", Endpoints: []string{"grpc://127.0.0.1:1"}}
			if err := v.ValidateInstance(good); err != nil {
				t.Errorf("ValidateInstance(%s) = %v", good, err)
			}
			refused := locality.Wrap(inner(f, has), locality.Config{Self: locality.Locality{Zone: "refused"}})
			defer refused.Close()
			if err := refused.(registry.Validator).ValidateInstance(good); !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("ValidateInstance of an instance the wrapped registry refuses once stamped = %v, want ErrInvalid", err)
			}

			wt, err := w.Watch(ctx, "svc")
			if err != nil {
				t.Fatal(err)
			}
			defer wt.Stop()
			if _, ok := wt.(registry.Notifier); ok != strings.Contains(has, "notify") {
				t.Errorf("watcher is a Notifier: %v", ok)
			}
		})
	}
}

// The wrapper's Notifier watchers deliver what Next would, selected and
// deduplicated, and wake their reader on every state of the wrapped
// registry.
func TestWrapNotifier(t *testing.T) {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	defer mem.Close()
	w := locality.Wrap(mem, locality.Config{Self: locality.Locality{Zone: "a", Region: "r1"}})
	defer w.Close()
	wt, err := w.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer wt.Stop()
	n := wt.(registry.Notifier)
	woken := make(chan struct{}, 16)
	n.Notify(func() { woken <- struct{}{} })
	next := func(what string, want ...string) {
		t.Helper()
		for {
			select {
			case <-woken:
			default:
				t.Fatalf("%s: no state ready", what)
			}
			u, ok, err := n.TryNext()
			if err != nil {
				t.Fatalf("%s: TryNext: %v", what, err)
			}
			if ok {
				if got := strings.Join(ids(u.Instances), ","); got != strings.Join(want, ",") {
					t.Errorf("%s: %s, want %v", what, got, want)
				}
				return
			}
		}
	}
	next("the first state") // empty
	if err := mem.Register(ctx, inst("a1", "a", "r1")); err != nil {
		t.Fatal(err)
	}
	next("zone", "a1")
	if err := mem.Register(ctx, inst("c1", "c", "r2")); err != nil {
		t.Fatal(err)
	}
	// Outside the selected level: woken, nothing new.
	<-woken
	if u, ok, err := n.TryNext(); ok || err != nil {
		t.Errorf("TryNext after a change outside the level = %v, %v, %v; want nothing", u, ok, err)
	}
	w.Close()
	<-woken
	if _, ok, err := n.TryNext(); !ok || !errors.Is(err, registry.ErrClosed) || !errors.Is(err, registry.ErrStopped) {
		t.Errorf("TryNext after the wrapper's Close = %v, %v; want ErrClosed and ErrStopped", ok, err)
	}
}

// The selection is made once per state of the wrapped registry, over a
// chain (a Deriver) and over a registry that is not one, and so is what
// a plugin derives from it through the wrapper: the same value until the
// state changes.
func TestWrapDerivesOncePerState(t *testing.T) {
	ctx := context.Background()
	self := locality.Config{Self: locality.Locality{Zone: "a", Region: "r1"}}
	for _, kind := range []string{"chain", "memory"} {
		t.Run(kind, func(t *testing.T) {
			mem := registrytest.NewMemoryNamed("m")
			defer mem.Close()
			var under registry.Registry = mem
			if kind == "chain" {
				c, err := chain.New([]chain.Tier{{Name: "m", Registry: mem}}, chain.WithLogger(slog.New(slog.DiscardHandler)))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				under = c
			}
			w := locality.Wrap(under, self)
			defer w.Close()
			for _, in := range []*registry.Instance{inst("a1", "a", "r1"), inst("c1", "c", "r2")} {
				if err := mem.Register(ctx, in); err != nil {
					t.Fatal(err)
				}
			}
			type key struct{}
			var runs atomic.Int64
			derive := func(ins []*registry.Instance) any { runs.Add(1); return strings.Join(ids(ins), ",") }
			var first any
			testutil.WaitFor(t, 10*time.Second, "the zone's instance", testutil.Until(func() bool {
				v, err := w.(registry.Deriver).Derive(ctx, "svc", key{}, derive)
				first = v
				return err == nil && v == "a1"
			}))
			shared := registry.GetServiceShared
			a, _ := shared(ctx, w, "svc")
			runs.Store(0)
			for range 10 {
				v, err := w.(registry.Deriver).Derive(ctx, "svc", key{}, derive)
				if err != nil || v != first {
					t.Fatalf("Derive of an unchanged state = %v, %v; want %v", v, err, first)
				}
				b, err := shared(ctx, w, "svc")
				if err != nil || len(b) != 1 || b[0] != a[0] {
					t.Fatalf("GetServiceShared of an unchanged state = %v, %v; want the same instance", ids(b), err)
				}
			}
			if r := runs.Load(); r != 0 {
				t.Errorf("derive ran %d times for an unchanged state", r)
			}
			if _, err := w.(registry.Deriver).Derive(ctx, "svc", []int{1}, derive); !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("Derive with an uncomparable key = %v, want ErrInvalid", err)
			}
			if err := mem.Register(ctx, inst("a2", "a", "r1")); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 10*time.Second, "the new state", testutil.Until(func() bool {
				v, err := w.(registry.Deriver).Derive(ctx, "svc", key{}, derive)
				return err == nil && v == "a1,a2"
			}))
		})
	}
}
