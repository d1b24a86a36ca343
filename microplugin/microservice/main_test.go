package microservice_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/embedetcd/etcdtest"
)

var shared etcdtest.Shared

// go-micro's root, client and server packages start goroutines when
// imported: those are ignored, anything the tests start is not.
func TestMain(m *testing.M) {
	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	shared.Stop()
	if code == 0 {
		// A go-micro client's response cache runs a janitor goroutine
		// that stops once the cache is collected (go-cache stops it from
		// a finalizer): collect before looking for leaks.
		runtime.GC()
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
