//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package file

import (
	"errors"
	"os"
	"syscall"
	"time"
)

var errWouldBlock = syscall.EWOULDBLOCK

// lockShared takes a shared flock on f, the lock bbolt's readers take,
// retrying every 50ms until timeout (once if timeout is negative). It
// returns errWouldBlock if the file stays locked.
func lockShared(f *os.File, timeout time.Duration) error {
	start := time.Now()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return err
		case timeout < 0 || time.Since(start) >= timeout:
			return errWouldBlock
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unlock releases f's flock, which closing f alone does not do while a
// memory mapping of f is alive.
func unlock(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
