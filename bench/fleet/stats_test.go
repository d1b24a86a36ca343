package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuantile(t *testing.T) {
	s := []time.Duration{5, 1, 4, 2, 3}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 3}, {0.9, 5}, {1, 5}} {
		if got := quantile(s, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile(nil) = %v, want 0", got)
	}
}

func TestSummarise(t *testing.T) {
	w := 100 * time.Millisecond
	// 12 buckets: quiet, a burst at 300 ms, a tail, quiet.
	b := []float64{1, 1, 1, 50, 20, 8, 1, 1, 1, 1, 3, 1}
	s := summarise(b, w, 50) // above 5 per bucket
	want := storm{peak: 500, peakAt: 300 * time.Millisecond, settledAt: 600 * time.Millisecond, firstSec: 85, total: 89}
	if s != want {
		t.Errorf("summarise = %+v, want %+v", s, want)
	}
}
