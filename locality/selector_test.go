package locality_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
)

func inst(id, zone, region string) *registry.Instance {
	md := map[string]string{}
	if zone != "" {
		md[locality.KeyZone] = zone
	}
	if region != "" {
		md[locality.KeyRegion] = region
	}
	return &registry.Instance{ID: id, Name: "svc", Metadata: md, Endpoints: []string{"grpc://127.0.0.1:1"}}
}

func ids(ins []*registry.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

func TestSelectTable(t *testing.T) {
	self := locality.Locality{Zone: "a", Region: "r1"}
	all := []*registry.Instance{
		inst("a1", "a", "r1"), inst("a2", "a", "r1"),
		inst("b1", "b", "r1"),
		inst("c1", "c", "r2"), inst("c2", "c", "r2"), inst("c3", "c", "r2"),
		inst("x1", "a", "r2"), // zone "a" of another region
	}
	tests := []struct {
		name    string
		self    locality.Locality
		th      locality.Thresholds
		cur     locality.Level
		ins     []*registry.Instance
		wantLvl locality.Level
		wantIDs []string
	}{
		{"zone", self, locality.Thresholds{}, locality.LevelZone, all, locality.LevelZone, []string{"a1", "a2"}},
		{"zone too small by count", self, locality.Thresholds{MinCount: 3}, locality.LevelZone, all, locality.LevelRegion, []string{"a1", "a2", "b1"}},
		{"zone too small by share", self, locality.Thresholds{MinShare: 0.3}, locality.LevelZone, all, locality.LevelRegion, []string{"a1", "a2", "b1"}},
		{"region too small too", self, locality.Thresholds{MinCount: 4}, locality.LevelZone, all, locality.LevelAny, ids(all)},
		{"back to zone needs recover", self, locality.Thresholds{MinCount: 2, RecoverCount: 3}, locality.LevelRegion, all, locality.LevelRegion, []string{"a1", "a2", "b1"}},
		{"back to zone when recovered", self, locality.Thresholds{MinCount: 2, RecoverCount: 2}, locality.LevelRegion, all, locality.LevelZone, []string{"a1", "a2"}},
		{"no zone: region", locality.Locality{Region: "r2"}, locality.Thresholds{}, locality.LevelZone, all, locality.LevelRegion, []string{"c1", "c2", "c3", "x1"}},
		{"zone without region matches any region", locality.Locality{Zone: "a"}, locality.Thresholds{}, locality.LevelZone, all, locality.LevelZone, []string{"a1", "a2", "x1"}},
		{"nowhere: all", locality.Locality{}, locality.Thresholds{}, locality.LevelZone, all, locality.LevelAny, ids(all)},
		{"empty keeps level", self, locality.Thresholds{}, locality.LevelRegion, nil, locality.LevelRegion, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lvl, got := locality.Select(tt.self, tt.th, tt.cur, tt.ins)
			if lvl != tt.wantLvl || !slices.Equal(ids(got), tt.wantIDs) {
				t.Errorf("Select = %v %v, want %v %v", lvl, ids(got), tt.wantLvl, tt.wantIDs)
			}
		})
	}
}

// TestSelectProperties checks the selector's rules on random fleets,
// thresholds and current levels.
func TestSelectProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []locality.Locality{{"a", "r1"}, {"b", "r1"}, {"c", "r2"}, {"d", "r2"}, {"", "r1"}, {"", ""}}
	for i := 0; i < 20000; i++ {
		var ins []*registry.Instance
		for j := range rng.IntN(12) {
			z := zones[rng.IntN(len(zones))]
			ins = append(ins, inst(fmt.Sprint(j), z.Zone, z.Region))
		}
		self := zones[rng.IntN(len(zones))]
		th := locality.Thresholds{
			MinCount: rng.IntN(4), RecoverCount: rng.IntN(6),
			MinShare: rng.Float64() * 0.5, RecoverShare: rng.Float64() * 0.7,
		}
		cur := locality.Level(rng.IntN(3))
		lvl, got := locality.Select(self, th, cur, ins)
		desc := fmt.Sprintf("case %d: self=%v th=%+v cur=%v ins=%d", i, self, th, cur, len(ins))

		// An empty set keeps the level; otherwise the answer is never empty.
		if len(ins) == 0 {
			if lvl != cur || len(got) != 0 {
				t.Fatalf("%s: empty set gave %v %d", desc, lvl, len(got))
			}
			continue
		}
		if len(got) == 0 {
			t.Fatalf("%s: non-empty set gave nothing at %v", desc, lvl)
		}
		// The answer is exactly the instances of the chosen level.
		var want []string
		for _, in := range ins {
			if self.Matches(lvl, in) {
				want = append(want, in.ID)
			}
		}
		if !slices.Equal(ids(got), want) {
			t.Fatalf("%s: got %v, want level %v = %v", desc, ids(got), lvl, want)
		}
		// Hysteresis: a level nearer than the current one is entered only
		// when it meets the recover thresholds (normalized as documented).
		if lvl < cur {
			n := float64(len(got))
			rc := max(th.RecoverCount, th.MinCount, 1)
			rs := max(th.RecoverShare, th.MinShare)
			if len(got) < rc || n/float64(len(ins)) < rs {
				t.Fatalf("%s: moved nearer to %v with %d instances below recover thresholds", desc, lvl, len(got))
			}
		}
		// Stability: the same set again does not move the level (no flap
		// without a change).
		if again, _ := locality.Select(self, th, lvl, ins); again != lvl {
			t.Fatalf("%s: level %v then %v for the same set", desc, lvl, again)
		}
		// The nearest level is never skipped when it meets the recover
		// thresholds, whatever the current level.
		for l := locality.LevelZone; l < lvl; l++ {
			var n int
			for _, in := range ins {
				if self.Matches(l, in) {
					n++
				}
			}
			rc := max(th.RecoverCount, th.MinCount, 1)
			rs := max(th.RecoverShare, th.MinShare)
			if n > 0 && n >= rc && float64(n)/float64(len(ins)) >= rs {
				t.Fatalf("%s: skipped recovered level %v (%d instances) for %v", desc, l, n, lvl)
			}
		}
	}
}

func TestNearest(t *testing.T) {
	self := locality.Locality{Zone: "a", Region: "r1"}
	tests := []struct {
		self, o locality.Locality
		want    locality.Level
	}{
		{self, locality.Locality{Zone: "a", Region: "r1"}, locality.LevelZone},
		{self, locality.Locality{Zone: "a"}, locality.LevelZone},
		{self, locality.Locality{Zone: "b", Region: "r1"}, locality.LevelRegion},
		{self, locality.Locality{Region: "r1"}, locality.LevelRegion},
		{self, locality.Locality{Zone: "a", Region: "r2"}, locality.LevelAny},
		{self, locality.Locality{}, locality.LevelAny},
		{locality.Locality{Zone: "a"}, locality.Locality{Zone: "a", Region: "r9"}, locality.LevelZone},
		{locality.Locality{Region: "r1"}, locality.Locality{Zone: "a", Region: "r1"}, locality.LevelRegion},
		{locality.Locality{}, locality.Locality{Zone: "a", Region: "r1"}, locality.LevelAny},
	}
	for _, tt := range tests {
		if got := tt.self.Nearest(tt.o); got != tt.want {
			t.Errorf("%+v.Nearest(%+v) = %v, want %v", tt.self, tt.o, got, tt.want)
		}
		// Nearest agrees with Matches: o is in its nearest level and in
		// every farther one (the region level includes the zone).
		in := &registry.Instance{Metadata: map[string]string{locality.KeyZone: tt.o.Zone, locality.KeyRegion: tt.o.Region}}
		for l := tt.want; l <= locality.LevelAny; l++ {
			if l == locality.LevelRegion && tt.self.Region == "" {
				continue
			}
			if !tt.self.Matches(l, in) {
				t.Errorf("%+v: %+v nearest at %v but not in level %v", tt.self, tt.o, tt.want, l)
			}
		}
	}
}
