package backoff

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBounds(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	wantMax := []time.Duration{10, 20, 40, 80, 80, 80, 80}
	for i, m := range wantMax {
		m *= time.Millisecond
		d := b.Next()
		if d < m/2 || d > m {
			t.Errorf("attempt %d: delay %v, want in [%v, %v]", i, d, m/2, m)
		}
	}
	if b.Attempts() != len(wantMax) {
		t.Errorf("Attempts = %d, want %d", b.Attempts(), len(wantMax))
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Errorf("after Reset: %v, want <= 10ms", d)
	}
}

func TestZeroValueAndManyAttempts(t *testing.T) {
	var b Backoff
	for i := 0; i < 1000; i++ { // no overflow however long it retries
		d := b.Next()
		if d <= 0 || d > 10*time.Second {
			t.Fatalf("attempt %d: delay %v out of (0, 10s]", i, d)
		}
	}
}
