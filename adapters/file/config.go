package file

import (
	"log/slog"
	"time"
)

// DefaultTimeout is how long Open and OpenStore wait for the file's lock
// when Config.Timeout is zero.
const DefaultTimeout = time.Second

// DefaultMaxFileSize is the largest file Open and OpenStore accept when
// Config.MaxFileSize is zero: 256 MiB, two orders of magnitude above a
// snapshot of 10,000 services.
const DefaultMaxFileSize = 256 << 20

// Config configures Open and OpenStore. The zero value works.
type Config struct {
	// Timeout bounds the wait for the file's lock (bbolt's flock) when
	// another process holds it; then Open fails with ErrLocked. If zero,
	// DefaultTimeout. If negative, Open tries once and fails at once.
	// There is no way to wait forever: a locked file never hangs a process.
	Timeout time.Duration

	// ReadOnly opens an existing file without creating or changing it
	// (bbolt's shared lock: several read-only opens may coexist, none with
	// a writer). Writes return ErrReadOnly. For inspecting a file.
	ReadOnly bool

	// MaxFileSize is the largest file Open and OpenStore accept: they read
	// the whole file to check it, so a larger one (a runaway, a sparse file
	// of a terabyte) is refused, with an error wrapping
	// registry.ErrInvalid, before anything is allocated for it. If zero,
	// DefaultMaxFileSize.
	MaxFileSize int64

	// Logger receives warnings about records that cannot be decoded and are
	// skipped. If nil, slog.Default().
	Logger *slog.Logger
}

func (c Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c Config) maxFileSize() int64 {
	if c.MaxFileSize <= 0 {
		return DefaultMaxFileSize
	}
	return c.MaxFileSize
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}
