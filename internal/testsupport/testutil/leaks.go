package testutil

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// MainIgnoringImports runs m for a TestMain whose package imports
// packages that start goroutines when imported (go-micro's root, client
// and server): those, running before m starts, are ignored; any other
// goroutine still running after m, after cleanup (may be nil) and a
// garbage collection, fails the run. The collection lets a go-micro
// client's response cache stop its janitor goroutine, which go-cache
// stops from a finalizer. It returns the exit code for os.Exit.
func MainIgnoringImports(m *testing.M, cleanup func()) int {
	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	if code == 0 {
		runtime.GC()
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	return code
}
