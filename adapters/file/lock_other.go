//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package file

import (
	"errors"
	"os"
	"time"
)

var errWouldBlock = errors.New("would block")

// lockShared does nothing here: the check before bbolt's Open reads
// without a lock, and may see a file another process is writing as
// damaged.
func lockShared(f *os.File, timeout time.Duration) error { return nil }

func unlock(f *os.File) {}
