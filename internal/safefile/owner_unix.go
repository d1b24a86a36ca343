//go:build unix

package safefile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// NonBlock makes an open not wait: a FIFO without a writer opens at once
// (and is then refused by Check).
const NonBlock = syscall.O_NONBLOCK

// NoFollow makes an open fail on a symbolic link (ELOOP).
const NoFollow = syscall.O_NOFOLLOW

// CheckDir returns an error wrapping ErrUnsafe when dir, the directory of
// a file the process writes, may be changed by another user: it is owned
// by a user other than the process's own and root, or is writable by
// group or others (sticky or not: /tmp is such a directory). Such a user
// could replace the file, or plant one before the process creates it.
func CheckDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return &fs.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR}
	}
	uid, ok := owner(info)
	switch {
	case !ok:
		return nil
	case uid != os.Geteuid() && uid != 0:
		return fmt.Errorf("directory %s: %w: owned by user %d, not by this process's user %d (or root)", dir, ErrUnsafe, uid, os.Geteuid())
	case info.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("directory %s: %w: writable by group or others (%v)", dir, ErrUnsafe, info.Mode())
	}
	return nil
}

// Private checks f, a file the process writes: it must be owned by the
// process's user, else the error wraps ErrUnsafe. A file it owns that
// group or others may write or read is made private (mode 0600): fixed
// then returns the mode it had, for the caller to log.
func Private(f *os.File) (fixed fs.FileMode, err error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	uid, ok := owner(info)
	if !ok {
		return 0, nil
	}
	if uid != os.Geteuid() {
		return 0, fmt.Errorf("%s: %w: owned by user %d, not by this process's user %d", f.Name(), ErrUnsafe, uid, os.Geteuid())
	}
	if info.Mode().Perm()&0o077 == 0 {
		return 0, nil
	}
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("%s: %w: mode %v, and it cannot be made 0600: %w", f.Name(), ErrUnsafe, info.Mode(), err)
	}
	return info.Mode().Perm(), nil
}

func owner(info fs.FileInfo) (int, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
