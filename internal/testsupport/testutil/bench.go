package testutil

import (
	"testing"
	"time"
)

// ReportCPU reports the process CPU time used since start (a CPUTime
// reading taken before the benchmark loop) per operation, as "cpu-ns/op".
// Call it after the loop. Nothing is reported where CPUTime is 0.
func ReportCPU(b *testing.B, start time.Duration) {
	b.Helper()
	if start == 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(CPUTime()-start)/float64(b.N), "cpu-ns/op")
}
