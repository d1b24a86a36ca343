// Package safefile opens the files regchain reads from outside — the
// snapshot and registry files, the static tier's list, TLS and secret
// files — so that what another process put there can neither hang nor
// exhaust the process: a file is opened without blocking (a FIFO with no
// writer does not hang the open), must be a regular file (not a FIFO, a
// device or a directory), and is refused when it is larger than the
// caller's limit before anything is allocated for it.
//
// It also checks the place of a file the process writes (Private,
// CheckDir): owned by the process's user and not writable by group or
// others, so that no other user can replace or change it.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

var (
	// ErrNotRegular is returned for a FIFO, a device, a socket or a
	// directory where a regular file is expected.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is returned for a file larger than the caller's limit.
	ErrTooLarge = errors.New("file too large")
	// ErrUnsafe is returned for a file or directory that a user other than
	// the process's own (or root) may change: owned by another user,
	// writable by group or others, or a symbolic link where the process
	// writes.
	ErrUnsafe = errors.New("unsafe owner or mode")
)

// Open opens path for reading without blocking and returns it with its
// FileInfo, when it is a regular file of at most limit bytes. Symbolic
// links are followed. The caller closes the file.
func Open(path string, limit int64) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|NonBlock, 0)
	if err != nil {
		return nil, nil, err
	}
	info, err := Check(f, limit)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// Check returns f's FileInfo when f is a regular file of at most limit
// bytes (no limit if limit is negative).
func Check(f *os.File, limit int64) (fs.FileInfo, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", f.Name(), ErrNotRegular, kind(info.Mode()))
	}
	if limit >= 0 && info.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than %d", f.Name(), ErrTooLarge, info.Size(), limit)
	}
	return info, nil
}

// ReadFile reads the regular file at path, of at most limit (>= 0) bytes: its
// size is checked before anything is allocated, and a file that grows past
// limit while it is read is refused too.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, info, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 0, info.Size()+1)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, limit)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow: the file grew
		}
	}
}

// kind names a file mode's type for messages.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "mode " + m.String()
}
