package mirror_test

import (
	"testing"
	"time"

	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestConfigRequired(t *testing.T) {
	mem := registrytest.NewMemory()
	for _, cfg := range []mirror.Config{
		{Target: mem, Origin: "a"},
		{Source: mem, Origin: "a"},
		{Source: mem, Target: mem},
	} {
		if _, err := mirror.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestMirrorAddsAndDeletes(t *testing.T) {
	src, dst := registrytest.NewMemory(), registrytest.NewMemory()
	defer src.Close()
	defer dst.Close()
	a, b := inst("svc", "a", 1), inst("svc", "b", 2)
	register(t, src, a, b, inst("other", "o", 3))
	// A record that is itself a mirror is never mirrored again.
	foreign := inst("svc", "f", 4)
	foreign.Metadata[mirror.KeyOrigin] = "elsewhere"
	register(t, src, foreign)
	// A native record in the target with a key the source also has is left
	// alone.
	native := inst("svc", "b", 9)
	register(t, dst, native)

	m, stop := start(t, mirror.Config{Source: src, Target: dst, Origin: "dc-a", Services: []string{"svc"}})
	waitState(t, dst, "svc", "a<dc-a> b<>")
	if got := state(dst, "other"); got != "-" {
		t.Errorf("unselected service mirrored: %s", got)
	}
	deregister(t, src, a)
	waitState(t, dst, "svc", "b<>")
	a2 := inst("svc", "a", 5)
	register(t, src, a2)
	waitState(t, dst, "svc", "a<dc-a> b<>")
	if s := m.Stats(); s.Records != 1 || s.Registered < 2 || s.Deregistered < 1 {
		t.Errorf("stats = %+v", s)
	}
	stop()
	// A stopped mirror withdraws its records, never the native ones.
	waitState(t, dst, "svc", "b<>")
}

func TestMirrorAllServicesTwoWayNoLoop(t *testing.T) {
	a, b := registrytest.NewMemoryNamed("a"), registrytest.NewMemoryNamed("b")
	defer a.Close()
	defer b.Close()
	start(t, mirror.Config{Source: a, Target: b, Origin: "dc-a"})
	start(t, mirror.Config{Source: b, Target: a, Origin: "dc-b"})
	register(t, a, inst("x", "a1", 1), inst("y", "a2", 2))
	register(t, b, inst("x", "b1", 3))
	waitState(t, a, "x", "a1<> b1<dc-b>")
	waitState(t, b, "x", "a1<dc-a> b1<>")
	waitState(t, b, "y", "a2<dc-a>")
	waitState(t, a, "y", "a2<>")
	deregister(t, a, inst("y", "a2", 2))
	waitState(t, b, "y", "-")
	deregister(t, b, inst("x", "b1", 3))
	waitState(t, a, "x", "a1<>")
	waitState(t, b, "x", "a1<dc-a>")
}

func TestMirrorSourceOutageStaleAndBack(t *testing.T) {
	src, dst := registrytest.NewMemory(), registrytest.NewMemory()
	defer src.Close()
	defer dst.Close()
	register(t, src, inst("svc", "a", 1))
	m, _ := start(t, mirror.Config{Source: src, Target: dst, Origin: "dc-a",
		StaleAfter: 500 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	waitState(t, dst, "svc", "a<dc-a>")
	src.SetAvailable(false)
	waitState(t, dst, "svc", "-") // withdrawn after StaleAfter
	if s := m.Stats(); !s.SourceDown || !s.Stale {
		t.Errorf("stats during outage = %+v", s)
	}
	src.SetAvailable(true)
	waitState(t, dst, "svc", "a<dc-a>")
}

func TestMirrorTargetOutageResync(t *testing.T) {
	src, dst := registrytest.NewMemory(), registrytest.NewMemory()
	defer src.Close()
	defer dst.Close()
	register(t, src, inst("svc", "a", 1))
	start(t, mirror.Config{Source: src, Target: dst, Origin: "dc-a", MaxBackoff: 100 * time.Millisecond})
	waitState(t, dst, "svc", "a<dc-a>")
	dst.SetAvailable(false)
	register(t, src, inst("svc", "b", 2))
	deregister(t, src, inst("svc", "a", 1))
	dst.SetAvailable(true)
	waitState(t, dst, "svc", "b<dc-a>")
}

// A mirror restarted after a crash removes the records of its origin that
// the source no longer holds.
func TestMirrorRemovesLeftovers(t *testing.T) {
	src, dst := registrytest.NewMemory(), registrytest.NewMemory()
	defer src.Close()
	defer dst.Close()
	left := inst("svc", "gone", 1)
	left.Metadata[mirror.KeyOrigin] = "dc-a"
	other := inst("svc", "kept", 2)
	other.Metadata[mirror.KeyOrigin] = "dc-c"
	orphan := inst("old", "o", 4)
	orphan.Metadata[mirror.KeyOrigin] = "dc-a"
	register(t, dst, left, other, orphan)
	register(t, src, inst("svc", "a", 3))
	start(t, mirror.Config{Source: src, Target: dst, Origin: "dc-a"})
	waitState(t, dst, "svc", "a<dc-a> kept<dc-c>")
	waitState(t, dst, "old", "-")
}
