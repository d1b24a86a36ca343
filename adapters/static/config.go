package static

import (
	"log/slog"
	"time"

	"github.com/regchain/regchain/registry"
)

// Source is the Source of every Update of this package.
const Source = "static"

// DefaultPollInterval is how often Config.File is checked for changes when
// Config.PollInterval is zero.
const DefaultPollInterval = time.Second

// Config configures New. The zero value is a registry with no instances.
type Config struct {
	// Instances are the configured instances.
	Instances []*registry.Instance
	// File, if set, is a JSON array of instances read by New and again
	// whenever it changes.
	File string
	// PollInterval is how often File is checked for changes. If zero,
	// DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives reload warnings and debug messages. If nil,
	// slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
