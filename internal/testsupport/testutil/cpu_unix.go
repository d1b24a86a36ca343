//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// CPUTime returns the user plus system CPU time the process has used so
// far, or 0 where the platform does not tell. Benchmarks report it per
// operation beside the wall time, which on a loaded machine also counts
// the time the benchmark waited for a CPU.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
