package kratosinterop

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// kratosWatcherNext is the frame of Kratos' contrib etcd watcher that
// outlives its Stop: when its watch channel closes, Next sleeps a second
// (time.Sleep(time.Second), watcher.go) before it tries to watch again and
// returns, so a stopped Kratos client's resolver goroutine ends a second or
// more after the test, later on a loaded machine.
const kratosWatcherNext = "contrib/registry/etcd/v2.(*watcher).Next"

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		waitGone(kratosWatcherNext, 30*time.Second)
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// waitGone waits, at most limit, until no goroutine runs frame; goleak then
// reports it if it still does.
func waitGone(frame string, limit time.Duration) {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte(frame)) {
			return
		}
	}
}
