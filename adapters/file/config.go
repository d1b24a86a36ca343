package file

import (
	"log/slog"
	"time"
)

// DefaultTimeout is how long Open and OpenStore wait for the file's lock
// when Config.Timeout is zero.
const DefaultTimeout = time.Second

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

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}
