package locality_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// TestWrapConformance runs the conformance kit over a wrapped Memory
// registry whose reader has no locality: reads select everything and
// nothing is stamped, so the wrapper must be an exact pass-through. A
// wrapper that does not own the registry must still honour Close's
// contract on its own.
func TestWrapConformance(t *testing.T) {
	t.Setenv(locality.EnvZone, "")
	t.Setenv(locality.EnvRegion, "")
	t.Run("Own", func(t *testing.T) {
		registrytest.Run(t, func(t *testing.T) registry.Registry {
			return locality.Wrap(registrytest.NewMemory(), locality.Config{Own: true})
		})
	})
	t.Run("NotOwn", func(t *testing.T) {
		registrytest.Run(t, func(t *testing.T) registry.Registry {
			mem := registrytest.NewMemory()
			t.Cleanup(func() { mem.Close() })
			return locality.Wrap(mem, locality.Config{})
		})
	})
}

// Several wrappers over one registry: closing one ends it (its watchers,
// its calls, its Ping) and leaves the registry and the other wrapper as
// they were; only Own closes the registry.
func TestWrapCloseLeavesInner(t *testing.T) {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	defer mem.Close()
	self := locality.Config{Self: locality.Locality{Zone: "a", Region: "r1"}}
	w1, w2 := locality.Wrap(mem, self), locality.Wrap(mem, self)
	if err := w1.Register(ctx, inst("a1", "a", "r1")); err != nil {
		t.Fatal(err)
	}
	wt, err := w1.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Next(); err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Next(); !errors.Is(err, registry.ErrClosed) || !errors.Is(err, registry.ErrStopped) {
		t.Errorf("Next after the wrapper's Close = %v, want ErrClosed and ErrStopped", err)
	}
	if _, err := w1.GetService(ctx, "svc"); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("GetService after Close = %v, want ErrClosed", err)
	}
	if err := w1.(registry.Pinger).Ping(ctx); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
	if got, err := w2.GetService(ctx, "svc"); err != nil || !slices.Equal(ids(got), []string{"a1"}) {
		t.Errorf("the other wrapper after Close: %v, %v; want [a1]", ids(got), err)
	}
	if got, err := mem.GetService(ctx, "svc"); err != nil || len(got) != 1 {
		t.Errorf("the registry after a wrapper's Close: %v, %v; want its instance, still registered", got, err)
	}
	w2.Close()

	owner := locality.Wrap(mem, locality.Config{Own: true})
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.GetService(ctx, "svc"); !errors.Is(err, registry.ErrClosed) {
		t.Errorf("the registry after its owner's Close: %v, want ErrClosed", err)
	}
}

// Level says which level a service is on, the counts it judged by and why,
// through a zone's loss and recovery; Unwrap and Self give what a balancer
// needs to order every level itself.
func TestWrapLevel(t *testing.T) {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	defer mem.Close()
	self := locality.Locality{Zone: "a", Region: "r1"}
	w := locality.Wrap(mem, locality.Config{Self: self, Thresholds: locality.Thresholds{MinCount: 1, RecoverCount: 2}})
	defer w.Close()
	if st := w.Level("svc"); st.Level != locality.LevelZone || st.Reason != "not read yet" || !st.Since.IsZero() {
		t.Errorf("before any read: %+v", st)
	}
	a1, a2, b1, c1 := inst("a1", "a", "r1"), inst("a2", "a", "r1"), inst("b1", "b", "r1"), inst("c1", "c", "r2")
	for _, in := range []*registry.Instance{a1, b1, c1} {
		if err := mem.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name                string
		change              func()
		lvl                 locality.Level
		zone, region, total int
		reason              string
	}{
		{"zone", func() {}, locality.LevelZone, 1, 2, 3,
			`zone "a" has 1 of 3 instances, needs 1 to stay`},
		{"zone lost", func() { mem.Deregister(ctx, a1) }, locality.LevelRegion, 0, 1, 2,
			`zone "a" has 0 of 2 instances, needs 1 to stay; region "r1" has 1 of 2 instances, needs 1 to stay`},
		{"zone back below RecoverCount", func() { mem.Register(ctx, a1) }, locality.LevelRegion, 1, 2, 3,
			`zone "a" has 1 of 3 instances, needs 2 to come back; region "r1" has 2 of 3 instances, needs 1 to stay`},
		{"region lost too", func() { mem.Deregister(ctx, a1); mem.Deregister(ctx, b1) }, locality.LevelAny, 0, 0, 1,
			`zone "a" has 0 of 1 instances, needs 2 to come back; region "r1" has 0 of 1 instances, needs 1 to stay; so every instance`},
		{"zone recovered", func() { mem.Register(ctx, a1); mem.Register(ctx, a2) }, locality.LevelZone, 2, 2, 3,
			`zone "a" has 2 of 3 instances, needs 2 to come back`},
	}
	var since time.Time
	for _, s := range steps {
		s.change()
		if _, err := w.GetService(ctx, "svc"); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		st := w.Level("svc")
		if st.Level != s.lvl || st.Zone != s.zone || st.Region != s.region || st.Total != s.total || st.Reason != s.reason {
			t.Errorf("%s: Level = %+v\nwant level %v, counts %d/%d/%d, reason %s", s.name, st, s.lvl, s.zone, s.region, s.total, s.reason)
		}
		if st.Since.Before(since) || st.Since.IsZero() {
			t.Errorf("%s: Since %v, before the previous %v", s.name, st.Since, since)
		}
		since = st.Since
	}
	if w.Self() != self {
		t.Errorf("Self = %+v, want %+v", w.Self(), self)
	}
	all, err := w.Unwrap().GetService(ctx, "svc")
	if err != nil || len(all) != 3 {
		t.Errorf("Unwrap().GetService = %v, %v; want every level's 3 instances", ids(all), err)
	}
}

func TestWrapStampsFromEnv(t *testing.T) {
	t.Setenv(locality.EnvZone, "eu-1a")
	t.Setenv(locality.EnvRegion, "eu-1")
	mem := registrytest.NewMemory()
	w := locality.Wrap(mem, locality.Config{Self: locality.Locality{Region: "eu-cfg"}})
	defer w.Close()
	ctx := context.Background()
	in := &registry.Instance{ID: "1", Name: "svc", Endpoints: []string{"grpc://127.0.0.1:1"}}
	if err := w.Register(ctx, in); err != nil {
		t.Fatal(err)
	}
	if in.Metadata != nil {
		t.Fatalf("Register modified its input: %v", in.Metadata)
	}
	kept := &registry.Instance{ID: "2", Name: "svc", Metadata: map[string]string{"zone": "own"}, Endpoints: []string{"grpc://127.0.0.1:2"}}
	if err := w.Register(ctx, kept); err != nil {
		t.Fatal(err)
	}
	got, err := mem.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	want := []locality.Locality{{Zone: "eu-1a", Region: "eu-cfg"}, {Zone: "own", Region: "eu-cfg"}}
	for i, in := range got {
		if l := locality.Of(in); l != want[i] {
			t.Errorf("instance %s: locality %+v, want %+v", in.ID, l, want[i])
		}
	}
}

// TestZoneLossFailoverAndBack: a zone loses its instances, traffic goes to
// the region, then anywhere, and comes back level by level, only once each
// level is above the recover threshold (no flap in between), for both
// GetService and a watcher.
func TestZoneLossFailoverAndBack(t *testing.T) {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	w := locality.Wrap(mem, locality.Config{
		Self:       locality.Locality{Zone: "a", Region: "r1"},
		Thresholds: locality.Thresholds{MinCount: 2, RecoverCount: 3},
	})
	defer w.Close()
	reg := func(ins ...*registry.Instance) {
		t.Helper()
		for _, in := range ins {
			if err := mem.Register(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	dereg := func(ins ...*registry.Instance) {
		t.Helper()
		for _, in := range ins {
			if err := mem.Deregister(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	a1, a2, a3 := inst("a1", "a", "r1"), inst("a2", "a", "r1"), inst("a3", "a", "r1")
	b1, b2 := inst("b1", "b", "r1"), inst("b2", "b", "r1")
	c1, c2 := inst("c1", "c", "r2"), inst("c2", "c", "r2")
	reg(a1, a2, b1, b2, c1, c2)

	// A second wrapper over the same registry, read only through a watcher,
	// so that its level moves only with the updates it sees.
	ww := locality.Wrap(mem, locality.Config{
		Self:       locality.Locality{Zone: "a", Region: "r1"},
		Thresholds: locality.Thresholds{MinCount: 2, RecoverCount: 3},
	})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watcher, err := ww.Watch(wctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()

	step := func(name string, want ...string) {
		t.Helper()
		got, err := w.GetService(ctx, "svc")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(ids(got), want) {
			t.Errorf("%s: GetService = %v, want %v", name, ids(got), want)
		}
		// Memory publishes synchronously, so the watcher's next state is
		// this one unless it was dropped as equal to the previous.
		u, err := watcher.Next()
		if err != nil {
			t.Fatalf("%s: Next: %v", name, err)
		}
		if !slices.Equal(ids(u.Instances), want) {
			t.Errorf("%s: watcher = %v, want %v", name, ids(u.Instances), want)
		}
	}
	step("zone healthy", "a1", "a2")
	dereg(a2)
	step("zone below MinCount: region", "a1", "b1", "b2")
	dereg(b1, b2)
	step("region below MinCount: any", "a1", "c1", "c2")
	reg(b1)
	// Region has 2 again: at MinCount but below RecoverCount, so reads stay
	// on "any" (this is the hysteresis band).
	step("region between thresholds: still any", "a1", "b1", "c1", "c2")
	dereg(b1)
	step("still any", "a1", "c1", "c2")
	reg(b1, b2)
	step("region recovered: region", "a1", "b1", "b2")
	reg(a2)
	// Zone has 2: stays on region (band), the watcher sees the new region set.
	step("zone between thresholds: region", "a1", "a2", "b1", "b2")
	reg(a3)
	step("zone recovered: zone", "a1", "a2", "a3")
	// Changes outside the selected level do not wake the watcher.
	dereg(c2)
	reg(a2) // re-register unchanged: no new state either
	dereg(a3)
	step("zone at MinCount: stays zone", "a1", "a2")
}

func TestWrapWatchAllPerService(t *testing.T) {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	w := locality.Wrap(mem, locality.Config{Self: locality.Locality{Zone: "a", Region: "r1"}})
	defer w.Close()
	for _, in := range []*registry.Instance{inst("a1", "a", "r1"), inst("c1", "c", "r2")} {
		if err := mem.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	other := inst("o1", "c", "r2")
	other.Name = "other"
	if err := mem.Register(ctx, other); err != nil {
		t.Fatal(err)
	}
	wt, err := w.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer wt.Stop()
	seen := map[string]string{}
	for len(seen) < 2 {
		u, err := wt.Next()
		if err != nil {
			t.Fatal(err)
		}
		seen[u.Service] = strings.Join(ids(u.Instances), ",")
	}
	if seen["svc"] != "a1" || seen["other"] != "o1" {
		t.Errorf("watch-all states = %v, want svc=a1 (zone) other=o1 (any)", seen)
	}
}
