package dropguard_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/internal/dropguard"
	"github.com/regchain/regchain/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSettingsDefaults(t *testing.T) {
	var s dropguard.Settings
	if s.Share() != 0.5 || s.HoldWindow() != time.Minute || s.Reads() != 4 || s.Interval() != 15*time.Second {
		t.Errorf("defaults: share %v window %v reads %d interval %v", s.Share(), s.HoldWindow(), s.Reads(), s.Interval())
	}
	s = dropguard.Settings{MaxDropShare: 0.2, Window: 2 * time.Second, Confirmations: 2}
	if s.Share() != 0.2 || s.HoldWindow() != 2*time.Second || s.Reads() != 2 || s.Interval() != time.Second {
		t.Errorf("set: share %v window %v reads %d interval %v", s.Share(), s.HoldWindow(), s.Reads(), s.Interval())
	}
}

func TestConfirmed(t *testing.T) {
	s := dropguard.Settings{Window: 10 * time.Second, Confirmations: 2}
	t0 := time.Unix(100, 0)
	for _, c := range []struct {
		reads int
		after time.Duration
		want  bool
	}{
		{2, 10 * time.Second, true},
		{1, 10 * time.Second, false}, // not enough reads
		{5, 9 * time.Second, false},  // not the whole window
	} {
		if got := s.Confirmed(c.reads, t0, t0.Add(c.after)); got != c.want {
			t.Errorf("Confirmed(%d reads after %v) = %v, want %v", c.reads, c.after, got, c.want)
		}
	}
}

func TestIsDrop(t *testing.T) {
	mk := func(ids ...string) []*registry.Instance {
		out := make([]*registry.Instance, len(ids))
		for i, id := range ids {
			out[i] = &registry.Instance{ID: id}
		}
		return out
	}
	own := func(id string) bool { return id == "mine" }
	for _, c := range []struct {
		cur, next []*registry.Instance
		want      bool
	}{
		{mk("a", "b"), mk(), true},
		{mk("a", "b"), mk("a"), false},         // half: not more than half
		{mk("a", "b", "c"), mk("a"), true},     // two of three
		{mk("a", "b"), mk("c", "d"), false},    // replaced, not dropped
		{mk(), mk(), false},                    // nothing to drop
		{mk("mine"), mk(), false},              // the caller's own deregistration
		{mk("mine", "a", "b"), mk("a"), false}, // 1 of 2 counted
	} {
		if got := dropguard.IsDrop(c.cur, c.next, 0.5, own); got != c.want {
			t.Errorf("IsDrop(%d -> %d) = %v, want %v", len(c.cur), len(c.next), got, c.want)
		}
	}
}
