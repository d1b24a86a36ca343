package nearest_test

import (
	"testing"
	"time"

	"github.com/regchain/regchain/locality/nearest"
)

func TestAttemptTimeouts(t *testing.T) {
	var a nearest.AttemptTimeouts
	ms := time.Millisecond
	for i := range nearest.DefaultAttemptSamples - 1 {
		a.Observe("op", ms)
		if d := a.Timeout("op"); d != 0 {
			t.Fatalf("after %d successes: %v, want none yet", i+1, d)
		}
	}
	a.Observe("op", 10*ms)
	if d := a.Timeout("op"); d != 100*ms {
		t.Errorf("slowest 10ms: %v, want the 100ms floor", d)
	}
	a.Observe("op", 50*ms)
	if d := a.Timeout("op"); d != 200*ms {
		t.Errorf("slowest 50ms: %v, want 4 x 50ms", d)
	}
	if d := a.Timeout("other"); d != 0 {
		t.Errorf("another operation: %v, want none", d)
	}
	// The slowest is forgotten after two windows of faster successes.
	for range 64 * 2 {
		a.Observe("op", ms)
	}
	if d := a.Timeout("op"); d != 100*ms {
		t.Errorf("after 128 fast successes: %v, want the floor again", d)
	}
	b := nearest.AttemptTimeouts{Factor: 2, Min: ms, Samples: 1}
	b.Observe("op", 10*ms)
	if d := b.Timeout("op"); d != 20*ms {
		t.Errorf("Factor 2, Min 1ms, Samples 1: %v, want 20ms", d)
	}
}
