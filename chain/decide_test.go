package chain

import (
	"fmt"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// st builds a state of svc from a tier (or "snapshot") with the given IDs.
func st(src string, ids ...string) *registry.Update {
	u := &registry.Update{Service: "svc", Source: src, Instances: []*registry.Instance{}, Time: time.Unix(1000, 0)}
	for _, id := range ids {
		u.Instances = append(u.Instances, &registry.Instance{ID: id, Name: "svc"})
	}
	return u
}

func ids2(u *registry.Update) string {
	if u == nil {
		return "<nil>"
	}
	var out []string
	for _, in := range u.Instances {
		out = append(out, in.ID)
	}
	return u.Source + fmt.Sprint(out)
}

// tin is a tier that is up, stable and not late.
// The tier is watched; a nil data is a first state on its way since the
// decision's now (decideCase sets since).
func tin(name string, auth bool, data *registry.Update) tierIn {
	return tierIn{name: name, up: true, watched: true, stable: true, auth: auth, data: data, fresh: data != nil}
}

func down(name string, auth bool, data *registry.Update) tierIn {
	return tierIn{name: name, auth: auth, data: data}
}

func TestDecide(t *testing.T) {
	t0 := time.Unix(2000, 0)
	g := Guard{Window: 60 * time.Second, Confirmations: 4}
	five := st("t1", "a", "b", "c", "d", "e")
	cases := []struct {
		name     string
		in       decideIn
		want     string // ids2 of the served state, "keep" for no change
		wantMask uint64
		hold     string // "" none, else "count/reads"
		event    guardEvent
		unpin    bool
		// unavailable: a first read fails now
		unavailable bool
	}{
		{
			name: "first state from the first tier",
			in:   decideIn{tiers: []tierIn{tin("t1", false, st("t1", "a"))}},
			want: "t1[a]", wantMask: 1,
		},
		{
			name: "first tier's state on its way: wait for it",
			in:   decideIn{tiers: []tierIn{tin("t1", false, nil), tin("t2", false, st("t2", "a"))}},
			want: "keep",
		},
		{
			name: "first tier late: take the next",
			in:   decideIn{tiers: []tierIn{{name: "t1", up: true, watched: true, failed: true}, tin("t2", false, st("t2", "a"))}},
			want: "t2[a]", wantMask: 2,
		},
		{
			name: "empty from a tier that is no authority: the next tier answers",
			in:   decideIn{tiers: []tierIn{tin("t1", false, st("t1")), tin("t2", false, st("t2", "a"))}},
			want: "t2[a]", wantMask: 2,
		},
		{
			name: "source down, next tier no authority: the snapshot serves",
			in: decideIn{
				cur:   &state{u: st("t1", "a", "b"), mask: 1},
				tiers: []tierIn{down("t1", true, nil), tin("t2", false, st("t2"))},
				snap:  st(SnapshotSource, "a", "b"),
			},
			want: "snapshot[a b]", wantMask: 0,
		},
		{
			name: "nothing anywhere: the empty answer of a tier that is no authority",
			in:   decideIn{tiers: []tierIn{tin("t1", false, st("t1")), tin("t2", false, st("t2"))}},
			want: "t1[]", wantMask: 1,
		},
		{
			name: "every tier down, no snapshot: keep",
			in:   decideIn{cur: &state{u: st("t1", "a"), mask: 1}, tiers: []tierIn{down("t1", true, nil)}},
			want: "keep",
		},
		{
			name: "authority's drop to zero from a steady tier is held",
			in:   decideIn{cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0},
			want: "keep", hold: "0/0", event: evHeld,
		},
		{
			name: "a mass removal is held",
			in:   decideIn{cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1", "a", "b"))}, now: t0},
			want: "keep", hold: "2/0", event: evHeld,
		},
		{
			name: "a small removal goes through",
			in:   decideIn{cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1", "a", "b", "c"))}, now: t0},
			want: "t1[a b c]", wantMask: 1,
		},
		{
			name: "a rolling replacement is no drop",
			in:   decideIn{cur: &state{u: st("t1", "a", "b"), mask: 1}, tiers: []tierIn{tin("t1", true, st("t1", "c", "d"))}, now: t0},
			want: "t1[c d]", wantMask: 1,
		},
		{
			name: "the chain's own deregistration is no drop",
			in: decideIn{
				cur: &state{u: st("t1", "a"), mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0,
				ownRemoved: map[string]bool{"a": true},
			},
			want: "t1[]", wantMask: 1,
		},
		{
			name: "re-reads before the window: still held",
			in: decideIn{
				cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0.Add(45 * time.Second),
				hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0, reads: 2}, reread: true,
			},
			want: "keep", hold: "0/3",
		},
		{
			name: "enough re-reads but the window not over: still held",
			in: decideIn{
				cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0.Add(30 * time.Second),
				hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0, reads: 5}, reread: true,
			},
			want: "keep", hold: "0/6",
		},
		{
			name: "confirmed: the drop goes through",
			in: decideIn{
				cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0.Add(60 * time.Second),
				hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0, reads: 3}, reread: true,
			},
			want: "t1[]", wantMask: 1, event: evConfirmed,
		},
		{
			name: "a watch state (not a re-read) does not confirm",
			in: decideIn{
				cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0.Add(90 * time.Second),
				hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0, reads: 3},
			},
			want: "keep", hold: "0/3",
		},
		{
			name: "the service comes back: the hold is discarded",
			in: decideIn{
				cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1", "a", "b", "c", "d"))}, now: t0.Add(10 * time.Second),
				hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0, reads: 1},
			},
			want: "t1[a b c d]", wantMask: 1, event: evDiscarded,
		},
		{
			name: "the drop moves to another tier: its reads start over",
			in: decideIn{
				cur:   &state{u: five, mask: 1},
				tiers: []tierIn{down("t1", true, nil), tin("t2", true, st("t2"))}, now: t0.Add(50 * time.Second),
				hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0, reads: 3},
			},
			want: "keep", hold: "0/0",
		},
		{
			name: "released by the operator",
			in: decideIn{
				cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0,
				hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0}, release: true,
			},
			want: "t1[]", wantMask: 1, event: evReleased,
		},
		{
			name: "guard disabled",
			in:   decideIn{cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, guard: Guard{Disabled: true}},
			want: "t1[]", wantMask: 1,
		},
		{
			name: "frozen: the last known good, even after an accepted empty state",
			in: decideIn{
				frozen: true, cur: &state{u: st("t1"), mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))},
				snap: st(SnapshotSource), good: st(SnapshotSource, "a", "b"),
			},
			want: "snapshot[a b]",
		},
		{
			name: "frozen without any state: empty",
			in:   decideIn{frozen: true, name: "svc"},
			want: "snapshot[]",
		},
		{
			name: "rolled back: the last known good while the tier says less",
			in: decideIn{
				pinned: true, cur: &state{u: st("t1"), mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))},
				good: st(SnapshotSource, "a", "b"),
			},
			want: "snapshot[a b]",
		},
		{
			name: "rolled back until the tier has the service back",
			in: decideIn{
				pinned: true, cur: &state{u: st(SnapshotSource, "a", "b")}, tiers: []tierIn{tin("t1", true, st("t1", "a", "c"))},
				good: st(SnapshotSource, "a", "b"),
			},
			want: "t1[a c]", wantMask: 1, unpin: true,
		},
		{
			name: "after Freeze: judged against the last accepted state, not the operator's",
			in: decideIn{
				operator: true, cur: &state{u: st(SnapshotSource, "a", "b")}, tiers: []tierIn{tin("t1", true, st("t1"))},
				snap: st(SnapshotSource), good: st(SnapshotSource, "a", "b"),
			},
			want: "t1[]", wantMask: 1,
		},
		{
			name: "failback waits for hysteresis",
			in: decideIn{
				cur:   &state{u: st("t2", "a"), mask: 2},
				tiers: []tierIn{{name: "t1", up: true, watched: true, fresh: true, auth: true, data: st("t1", "a", "b")}, tin("t2", true, st("t2", "a"))},
			},
			want: "t2[a]", wantMask: 2,
		},
		{
			name: "merge: union of the tiers with something to say",
			in: decideIn{
				policy: Merge, name: "svc",
				tiers: []tierIn{tin("t1", false, st("t1", "a")), tin("t2", false, st("t2")), tin("t3", false, st("t3", "b"))},
			},
			want: "t1+t3[a b]", wantMask: 5,
		},
		{
			name: "merge waits for every tier at first",
			in:   decideIn{policy: Merge, tiers: []tierIn{tin("t1", false, st("t1", "a")), tin("t2", false, nil)}},
			want: "keep",
		},
		{
			name: "frozen keeps a held drop as it is (neither confirmed nor dropped)",
			in: decideIn{
				frozen: true, cur: &state{u: five, mask: 1}, tiers: []tierIn{tin("t1", true, st("t1"))}, now: t0.Add(90 * time.Second),
				good: five, hold: &heldDrop{base: five, bmask: 1, mask: 1, since: t0, reads: 2}, reread: true,
			},
			want: "t1[a b c d e]", hold: "0/2",
		},
		{
			name: "a held drop serves what the candidate adds",
			in: decideIn{
				cur: &state{u: st(SnapshotSource, "a", "b", "c", "d"), mask: 0}, tiers: []tierIn{tin("t1", true, st("t1", "own"))}, now: t0,
			},
			want: "t1+snapshot[a b c d own]", wantMask: 1, hold: "1/0", event: evHeld,
		},
		{
			name: "merge: a tier that is down keeps its last state in the union",
			in: decideIn{
				policy: Merge, cur: &state{u: st("t1+t2", "a", "b"), mask: 3},
				tiers: []tierIn{tin("t1", true, st("t1", "a")), down("t2", true, st("t2", "b"))},
			},
			want: "t1+t2[a b]", wantMask: 3,
		},
		{
			name: "merge: a down tier's last state older than the max age leaves the union",
			in: decideIn{
				policy: Merge, cur: &state{u: st("t1+t2", "a", "b"), mask: 3}, now: t0, maxAge: time.Minute,
				tiers: []tierIn{tin("t1", true, st("t1", "a", "c")), down("t2", true, st("t2", "b"))},
			},
			want: "t1[a c]", wantMask: 1,
		},
		{
			name: "merge: a down tier's state ages from the tier's last answer, not from its last change",
			in: decideIn{
				policy: Merge, cur: &state{u: st("t1+t2", "a", "b"), mask: 3}, now: t0, maxAge: time.Minute,
				tiers: []tierIn{tin("t1", true, st("t1", "a")), func() tierIn { d := down("t2", true, st("t2", "b")); d.seen = t0.Add(-10 * time.Second); return d }()},
			},
			want: "t1+t2[a b]", wantMask: 3,
		},
		{
			name: "first view: the snapshot answers while the first tier's state is on its way",
			in:   decideIn{tiers: []tierIn{tin("t1", false, nil)}, snap: st(SnapshotSource, "a")},
			want: "snapshot[a]",
		},
		{
			name: "first view: a snapshot state too old is not served meanwhile",
			in:   decideIn{tiers: []tierIn{tin("t1", false, nil)}, snap: st(SnapshotSource, "a"), now: t0, maxAge: time.Minute},
			want: "keep",
		},
		{
			name: "first view: nothing up and no snapshot: unavailable at once",
			in:   decideIn{tiers: []tierIn{down("t1", true, nil), down("t2", false, nil)}},
			want: "keep", unavailable: true,
		},
		{
			name: "a snapshot state is not judged again",
			in:   decideIn{cur: &state{u: five, mask: 1}, tiers: []tierIn{down("t1", true, nil)}, snap: st(SnapshotSource, "a")},
			want: "snapshot[a]",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			if in.guard == (Guard{}) {
				in.guard = g
			}
			if in.name == "" {
				in.name = "svc"
			}
			withDefaults(&in)
			d := decide(&in)
			got := ids2(d.u)
			if d.keep {
				got = "keep"
			}
			if got != c.want {
				t.Errorf("served %s, want %s", got, c.want)
			}
			if !d.keep && d.mask != c.wantMask {
				t.Errorf("mask %b, want %b", d.mask, c.wantMask)
			}
			h := ""
			if d.hold != nil {
				h = fmt.Sprintf("%d/%d", d.hold.count, d.hold.reads)
			}
			if h != c.hold {
				t.Errorf("hold %q, want %q", h, c.hold)
			}
			if d.event != c.event {
				t.Errorf("event %v, want %v", d.event, c.event)
			}
			if d.unavailable != c.unavailable {
				t.Errorf("unavailable %v, want %v", d.unavailable, c.unavailable)
			}
			if d.unpin != c.unpin {
				t.Errorf("unpin %v, want %v", d.unpin, c.unpin)
			}
		})
	}
}

// withDefaults gives a test's decideIn the chain's default delays, and its
// watched tiers without a start time one at now (just started).
func withDefaults(in *decideIn) {
	if in.hedge == 0 {
		in.hedge = 100 * time.Millisecond
	}
	if in.callTimeout == 0 {
		in.callTimeout = 2 * time.Second
	}
	for i := range in.tiers {
		if t := &in.tiers[i]; t.watched && t.since.IsZero() {
			t.since = in.now
		}
	}
}

func TestIsDrop(t *testing.T) {
	mk := func(ids ...string) []*registry.Instance {
		out := []*registry.Instance{}
		for _, id := range ids {
			out = append(out, &registry.Instance{ID: id})
		}
		return out
	}
	cases := []struct {
		cur, next []string
		own       []string
		want      bool
	}{
		{nil, nil, nil, false},
		{[]string{"a"}, nil, nil, true},
		{[]string{"a"}, nil, []string{"a"}, false},
		{[]string{"a", "b"}, nil, []string{"a"}, true},
		{[]string{"a", "b", "c", "d"}, []string{"a", "b"}, nil, false},
		{[]string{"a", "b", "c", "d"}, []string{"a"}, nil, true},
		{[]string{"a", "b", "c", "d"}, []string{"a"}, []string{"b", "c"}, false},
		{[]string{"a", "b"}, []string{"x", "y"}, nil, false},
	}
	for _, c := range cases {
		own := map[string]bool{}
		for _, id := range c.own {
			own[id] = true
		}
		if got := isDrop(mk(c.cur...), mk(c.next...), 0.5, own); got != c.want {
			t.Errorf("isDrop(%v -> %v, own %v) = %v, want %v", c.cur, c.next, c.own, got, c.want)
		}
	}
}

// The first view waits for the first tier's state for the hedge delay, and
// says when to look again; past it, a lower tier's state counts.
func TestDecideHedge(t *testing.T) {
	t0 := time.Unix(2000, 0)
	in := decideIn{name: "svc", now: t0, tiers: []tierIn{tin("t1", false, nil), tin("t2", false, st("t2", "a"))}}
	withDefaults(&in)
	d := decide(&in)
	if !d.keep || !d.recheck.Equal(t0.Add(100*time.Millisecond)) || d.unavailable {
		t.Fatalf("before the hedge delay: keep %v, recheck %v, unavailable %v; want keep, recheck at +100ms", d.keep, d.recheck.Sub(t0), d.unavailable)
	}
	in.now = t0.Add(100 * time.Millisecond)
	d = decide(&in)
	if got := ids2(d.u); d.keep || got != "t2[a]" {
		t.Fatalf("at the hedge delay: served %s (keep %v), want t2[a]", got, d.keep)
	}
	if d.watch != 3 {
		t.Errorf("watch %b, want both tiers (the first may still answer)", d.watch)
	}
	// With a state served, the next source's first state is waited for
	// up to the call timeout.
	in.cur = &state{u: st(SnapshotSource, "a")}
	in.now = t0.Add(time.Second)
	if d := decide(&in); !d.keep || !d.recheck.Equal(t0.Add(2*time.Second)) {
		t.Errorf("with the snapshot served: keep %v, recheck %v; want keep, recheck at +2s", d.keep, d.recheck.Sub(t0))
	}
}

// TestDecideRecheckKeptState: under Merge, a down tier's last state kept in
// the union is decided on again the moment it grows older than the max age
// (counted from the tier's last answer), so that it leaves the union then
// and not at the next unrelated change.
func TestDecideRecheckKeptState(t *testing.T) {
	t0 := time.Unix(2000, 0)
	t2 := down("t2", true, st("t2", "b"))
	t2.seen = t0.Add(-10 * time.Second)
	in := decideIn{
		name: "svc", policy: Merge, cur: &state{u: st("t1+t2", "a", "b"), mask: 3}, now: t0, maxAge: time.Minute,
		guard: Guard{Window: 60 * time.Second, Confirmations: 4},
		tiers: []tierIn{tin("t1", true, st("t1", "a", "c")), t2},
	}
	withDefaults(&in)
	d := decide(&in)
	if got := ids2(d.u); got != "t1+t2[a b c]" {
		t.Fatalf("served %s, want t1+t2[a b c]", got)
	}
	if want := t2.seen.Add(time.Minute + time.Nanosecond); !d.recheck.Equal(want) {
		t.Fatalf("recheck at %v, want %v (the kept state's expiry)", d.recheck, want)
	}
	in.now = d.recheck
	in.cur = &state{u: d.u, mask: d.mask}
	if d := decide(&in); ids2(d.u) != "t1[a c]" {
		t.Fatalf("at the recheck: served %s, want t1[a c]", ids2(d.u))
	}
}

// TestDecideUpNotFreshAgesFromItsTime: a tier that is up but whose watch
// has not confirmed its last state (a restarted watch, late) does not keep
// that state young with its probes' answers: it ages from its own Time.
func TestDecideUpNotFreshAgesFromItsTime(t *testing.T) {
	t0 := time.Unix(20000, 0)
	old := st("t2", "b")
	old.Time = t0.Add(-2 * time.Hour) // the watch's last state, before a 2 h outage
	t2 := tierIn{name: "t2", up: true, watched: true, stable: true, auth: true, data: old, fresh: false,
		since: t0.Add(-30 * time.Minute), // the restarted watch's first state is long late
		seen:  t0.Add(-time.Second)}      // an answer a second ago
	in := decideIn{name: "svc", policy: Merge, cur: &state{u: st("t1+t2", "a", "b"), mask: 3}, now: t0, maxAge: time.Minute,
		guard: Guard{Window: 60 * time.Second, Confirmations: 4},
		tiers: []tierIn{tin("t1", true, st("t1", "a", "c")), t2}}
	withDefaults(&in)
	if d := decide(&in); d.keep || ids2(d.u) != "t1[a c]" {
		t.Errorf("a 2 h old state (max age 1 m) of an up tier still served: %s", ids2(d.u))
	}
}
