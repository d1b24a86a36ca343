package nearest_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

func TestLevelOf(t *testing.T) {
	md := func(zone, region string) map[string]string {
		m := map[string]string{}
		if zone != "" {
			m[locality.KeyZone] = zone
		}
		if region != "" {
			m[locality.KeyRegion] = region
		}
		return m
	}
	self := locality.Locality{Zone: "a", Region: "r1"}
	tests := []struct {
		name string
		self locality.Locality
		md   map[string]string
		want locality.Level
	}{
		{"same zone", self, md("a", "r1"), locality.LevelZone},
		{"same zone, no region", self, md("a", ""), locality.LevelZone},
		{"zone a of another region", self, md("a", "r2"), locality.LevelAny},
		{"same region", self, md("b", "r1"), locality.LevelRegion},
		{"elsewhere", self, md("c", "r2"), locality.LevelAny},
		{"no metadata", self, nil, locality.LevelAny},
		{"client without zone", locality.Locality{Region: "r1"}, md("a", "r1"), locality.LevelRegion},
		{"client nowhere", locality.Locality{}, md("a", "r1"), locality.LevelAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nearest.LevelOf(tt.self, tt.md); got != tt.want {
				t.Errorf("LevelOf = %v, want %v", got, tt.want)
			}
		})
	}
}

type node struct {
	id  string
	lvl locality.Level
	ep  *nearest.Endpoint
}

func at(n node) (locality.Level, *nearest.Endpoint) { return n.lvl, n.ep }

func names(ns []node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	return out
}

func TestPick(t *testing.T) {
	tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: 1 << 62})
	mk := func(id string, lvl locality.Level) node { return node{id, lvl, tr.Endpoint(id)} }
	a1, a2 := mk("a1", locality.LevelZone), mk("a2", locality.LevelZone)
	b1 := mk("b1", locality.LevelRegion)
	c1, c2 := mk("c1", locality.LevelAny), mk("c2", locality.LevelAny)
	all := []node{c1, b1, a1, c2, a2}

	check := func(what string, tried *nearest.Tried, wantLvl locality.Level, want ...string) {
		t.Helper()
		lvl, got := nearest.Pick(all, at, tried)
		if lvl != wantLvl || !slices.Equal(names(got), want) {
			t.Errorf("%s: Pick = %v %v, want %v %v", what, lvl, names(got), wantLvl, want)
		}
	}
	check("all answer", nil, locality.LevelZone, "a1", "a2")
	_, tried := nearest.WithTried(context.Background())
	tried.Add(a1.ep)
	check("a1 tried", tried, locality.LevelZone, "a2")
	tried.Add(a2.ep)
	check("zone tried", tried, locality.LevelRegion, "b1")
	a1.ep.Report(true)
	check("a1 ejected", nil, locality.LevelZone, "a2")
	a2.ep.Report(true)
	check("zone ejected", nil, locality.LevelRegion, "b1")
	tried.Add(b1.ep)
	tried.Add(c1.ep)
	check("zone ejected, b1 and c1 tried", tried, locality.LevelAny, "c2")
	tried.Add(c2.ep)
	check("all tried or ejected: back to the nearest tried", tried, locality.LevelRegion, "b1")
	for _, n := range all {
		n.ep.Report(true)
	}
	check("all ejected: nearest as if none were", tried, locality.LevelZone, "a1", "a2")
	if lvl, got := nearest.Pick[node](nil, at, nil); got != nil || lvl != locality.LevelAny {
		t.Errorf("Pick(nil) = %v %v", lvl, got)
	}
	free := node{"free", locality.LevelRegion, nil}
	check2, _ := nearest.Pick([]node{c1, free}, at, tried)
	if check2 != locality.LevelRegion {
		t.Errorf("a candidate without an Endpoint is not available")
	}
}

// TestPickProperties checks rule 3 on random candidate sets.
func TestPickProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: 1 << 62})
		n := rapid.IntRange(0, 12).Draw(t, "n")
		_, tried := nearest.WithTried(context.Background())
		var nodes []node
		ejected := map[string]bool{}
		isTried := map[string]bool{}
		for i := range n {
			id := string(rune('a' + i))
			nd := node{id, locality.Level(rapid.IntRange(0, 2).Draw(t, "level")), tr.Endpoint(id)}
			if rapid.Bool().Draw(t, "ejected") {
				nd.ep.Report(true)
				ejected[id] = true
			}
			if rapid.Bool().Draw(t, "tried") {
				tried.Add(nd.ep)
				isTried[id] = true
			}
			nodes = append(nodes, nd)
		}
		lvl, got := nearest.Pick(nodes, at, tried)
		if n == 0 {
			if got != nil {
				t.Fatalf("no candidates gave %v", names(got))
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("candidates gave nothing")
		}
		// The class of candidates Pick must use: the best non-empty one.
		classes := []func(node) bool{
			func(nd node) bool { return !ejected[nd.id] && !isTried[nd.id] },
			func(nd node) bool { return !ejected[nd.id] },
			func(node) bool { return true },
		}
		for _, in := range classes {
			var nearestLvl locality.Level = 99
			for _, nd := range nodes {
				if in(nd) {
					nearestLvl = min(nearestLvl, nd.lvl)
				}
			}
			if nearestLvl == 99 {
				continue
			}
			var want []string
			for _, nd := range nodes {
				if in(nd) && nd.lvl == nearestLvl {
					want = append(want, nd.id)
				}
			}
			if lvl != nearestLvl || !slices.Equal(names(got), want) {
				t.Fatalf("Pick = %v %v, want %v %v", lvl, names(got), nearestLvl, want)
			}
			return
		}
	})
}

// TestPickProbation: a re-admitted endpoint is offered to one call at a
// time until an outcome is reported, or until BaseTime has passed.
func TestPickProbation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Second, MaxTime: time.Minute})
		a := node{"a", locality.LevelZone, tr.Endpoint("a")}
		b := node{"b", locality.LevelRegion, tr.Endpoint("b")}
		all := []node{a, b}
		pick := func() []string { _, got := nearest.Pick(all, at, nil); return names(got) }
		a.ep.Report(true)
		if got := pick(); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("a ejected: %v", got)
		}
		time.Sleep(time.Second)
		if got := pick(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("a re-admitted, first call: %v, want [a]", got)
		}
		if got := pick(); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("a's probe held, second call: %v, want [b]", got)
		}
		time.Sleep(time.Second) // the first call never reported: the hold lapses
		if got := pick(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("hold lapsed: %v, want [a]", got)
		}
		a.ep.Report(false) // the probe answered: probation over
		for range 3 {
			if got := pick(); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("probation over: %v, want [a] every time", got)
			}
		}
		if st := a.ep.State(time.Now()); st.OnProbation || st.Ejections != 0 {
			t.Fatalf("after a successful probe: %+v", st)
		}

		// Only candidate, probe held by another call: the held one is
		// offered as if ejected (all ejected: nearest level).
		a.ep.Report(true)
		time.Sleep(time.Second)
		only := []node{a}
		if _, got := nearest.Pick(only, at, nil); !slices.Equal(names(got), []string{"a"}) {
			t.Fatalf("only candidate, probe free: %v", names(got))
		}
		if _, got := nearest.Pick(only, at, nil); !slices.Equal(names(got), []string{"a"}) {
			t.Fatalf("only candidate, probe held: %v, want [a] (nothing else to offer)", names(got))
		}
	})
}

// TestPickMaxEjectionPercent: with a cap of 50 %, at most half of the
// candidates (rounded up) count as ejected; those ejected last are offered
// as if they were not, and without taking a probe.
func TestPickMaxEjectionPercent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Hour, MaxEjectionPercent: 50})
		mk := func(id string, lvl locality.Level) node { return node{id, lvl, tr.Endpoint(id)} }
		a1, a2, b1, b2 := mk("a1", locality.LevelZone), mk("a2", locality.LevelZone), mk("b1", locality.LevelRegion), mk("b2", locality.LevelRegion)
		pick := func(nodes ...node) []string { _, got := nearest.Pick(nodes, at, nil); return names(got) }
		a1.ep.Report(true)
		time.Sleep(time.Millisecond)
		a2.ep.Report(true)
		if got := pick(a1, a2); !slices.Equal(got, []string{"a2"}) {
			t.Errorf("two candidates, both ejected: %v, want [a2] (ejected last, beyond the cap)", got)
		}
		if got := pick(a1, a2); !slices.Equal(got, []string{"a2"}) {
			t.Errorf("again: %v, want [a2] (no probe held)", got)
		}
		if got := pick(a1, a2, b1, b2); !slices.Equal(got, []string{"b1", "b2"}) {
			t.Errorf("four candidates, two ejected: %v, want the region's", got)
		}
		time.Sleep(time.Millisecond)
		b1.ep.Report(true)
		if got := pick(a1, a2, b1, b2); !slices.Equal(got, []string{"b1", "b2"}) {
			t.Errorf("four candidates, three ejected: %v, want [b1 b2] (b1 beyond the cap)", got)
		}
	})
}

// TestPickProbeAlone: a call that takes an endpoint's probe gets it alone,
// so that the door's balancer cannot send the probe elsewhere; the next
// call gets the others.
func TestPickProbeAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Second})
		a := node{"a", locality.LevelZone, tr.Endpoint("a")}
		b := node{"b", locality.LevelZone, tr.Endpoint("b")}
		all := []node{a, b}
		a.ep.Report(true)
		time.Sleep(time.Second)
		if _, got := nearest.Pick(all, at, nil); !slices.Equal(names(got), []string{"a"}) {
			t.Fatalf("probe: %v, want [a] alone", names(got))
		}
		if _, got := nearest.Pick(all, at, nil); !slices.Equal(names(got), []string{"b"}) {
			t.Fatalf("probe held: %v, want [b]", names(got))
		}
	})
}

// TestPickOneProbePerCall: a call whose attempt was a probe is not given
// another probe while other candidates are available: dead endpoints on
// probation cost a call one attempt at most.
func TestPickOneProbePerCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := nearest.NewTracker(nearest.Ejection{ConsecutiveFailures: 1, BaseTime: time.Second})
		a1 := node{"a1", locality.LevelZone, tr.Endpoint("a1")}
		a2 := node{"a2", locality.LevelZone, tr.Endpoint("a2")}
		b1 := node{"b1", locality.LevelRegion, tr.Endpoint("b1")}
		all := []node{a1, a2, b1}
		a1.ep.Report(true)
		a2.ep.Report(true)
		time.Sleep(time.Second) // both on probation
		_, tried := nearest.WithTried(context.Background())
		_, got := nearest.Pick(all, at, tried)
		if len(got) != 1 || got[0].lvl != locality.LevelZone || !tried.Probed() {
			t.Fatalf("first attempt: %v (probed %v), want one zone probe", names(got), tried.Probed())
		}
		tried.Add(got[0].ep)
		got[0].ep.Report(true) // the probe failed
		if _, got := nearest.Pick(all, at, tried); !slices.Equal(names(got), []string{"b1"}) {
			t.Fatalf("second attempt: %v, want [b1], not the other probe", names(got))
		}
	})
}
