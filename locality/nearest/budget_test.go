package nearest

import (
	"testing"
	"time"
)

func TestAttemptBudget(t *testing.T) {
	if b := NewAttemptBudget(-1); b.Bounded() || b.Timeout("op") != 0 {
		t.Fatalf("negative: bounded %v, timeout %v; want neither", b.Bounded(), b.Timeout("op"))
	}
	if b := NewAttemptBudget(300 * time.Millisecond); !b.Bounded() || b.Timeout("op") != 300*time.Millisecond {
		t.Fatalf("fixed: timeout %v, want 300ms", b.Timeout("op"))
	}
	b := NewAttemptBudget(0)
	if !b.Bounded() || b.Timeout("op") != 0 {
		t.Fatalf("adaptive before any success: timeout %v, want none", b.Timeout("op"))
	}
	for range DefaultAttemptSamples {
		b.Observe("op", 50*time.Millisecond)
	}
	if got, want := b.Timeout("op"), DefaultAttemptFactor*50*time.Millisecond; got != want {
		t.Fatalf("adaptive after %d successes of 50ms: %v, want %v", DefaultAttemptSamples, got, want)
	}
	if b.Timeout("other") != 0 {
		t.Fatal("another operation got the first one's timeout")
	}
}

func TestMatchMethod(t *testing.T) {
	list := []string{"/pkg.A/Get", "/pkg.B/"}
	for method, want := range map[string]bool{
		"/pkg.A/Get": true, "/pkg.A/Put": false, "/pkg.B/Any": true, "/pkg.Bx/Any": false, "": false,
	} {
		if got := MatchMethod(method, list); got != want {
			t.Errorf("MatchMethod(%q) = %v, want %v", method, got, want)
		}
	}
}
