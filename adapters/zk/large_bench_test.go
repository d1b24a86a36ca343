package zk_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkLargeService: 20,000 instances in one service, read, watched,
// changed once and mass-deleted (the fleet's session ends) through the
// adapter and through a chain over it (guard grace 1 s: the chain holds a
// drop to zero until it is confirmed). Each step's time is a metric in ms.
// Run with -benchtime=1x.
func BenchmarkLargeService(b *testing.B) {
	for i := 0; i < b.N; i++ {
		times := largeService(b, 20000)
		steps := make([]string, 0, len(times))
		for s := range times {
			steps = append(steps, s)
		}
		slices.Sort(steps)
		for _, s := range steps {
			b.ReportMetric(float64(times[s].Microseconds())/1000, "ms-"+strings.ReplaceAll(s, " ", "-"))
			b.Logf("%s: %v", s, times[s].Round(time.Millisecond))
		}
	}
}
