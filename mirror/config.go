package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
)

// KeyOrigin is the metadata key of a mirrored record: its value names the
// registry the record was mirrored from (Config.Origin).
const KeyOrigin = "regchain-mirror-origin"

// Defaults of Config.
const (
	DefaultStaleAfter     = 30 * time.Second
	DefaultResyncInterval = 30 * time.Second
	DefaultMaxBackoff     = 5 * time.Second
	DefaultTimeout        = 5 * time.Second
)

// Config configures a Mirror.
type Config struct {
	// Source is where records are read. Required.
	Source registry.Registry
	// Target is where they are written. Required. The mirror does not close
	// either registry.
	Target registry.Registry
	// Origin names the source in mirrored records (KeyOrigin), e.g. the
	// source datacenter's name. Required.
	Origin string
	// Services are the services to mirror. If empty, every service.
	Services []string
	// StaleAfter is how long mirrored records outlive an unreachable
	// source. If zero, 30s.
	StaleAfter time.Duration
	// ResyncInterval is how often the mirror reconciles every service in
	// full. If zero, 30s.
	ResyncInterval time.Duration
	// MaxBackoff caps the delay between retries of failed target writes. If
	// zero, 5s.
	MaxBackoff time.Duration
	// Timeout bounds each call to the source or target, and the withdrawal
	// of every record on stop. If zero, 5s.
	Timeout time.Duration
	// TTL is the time to live of the mirror's records in the target: how
	// long they outlive a mirror that is killed or closed. The target must
	// be a registry.TTLRegistrar (the etcd and Consul adapters are), else
	// New fails. If zero, the target registry's own TTL (15s by default for
	// both adapters).
	TTL time.Duration
	// Guard holds back drops at the source, by the chain's rules (see the
	// package doc and chain.Guard). The zero Guard is the default guard:
	// a drop by more than half, or to zero, is held until re-read 4 times
	// over 60s.
	Guard chain.Guard
	// Logger receives the mirror's warnings and debug messages. If nil,
	// slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Source == nil || c.Target == nil {
		return c, errors.New("mirror: Source and Target are required")
	}
	if c.Origin == "" {
		return c, errors.New("mirror: Origin is required")
	}
	if c.TTL < 0 {
		return c, fmt.Errorf("mirror: negative TTL %v", c.TTL)
	}
	if _, ok := c.Target.(registry.TTLRegistrar); c.TTL > 0 && !ok {
		return c, fmt.Errorf("mirror: TTL %v: the target (%T) cannot give a record a TTL of its own (it is no registry.TTLRegistrar); set the TTL in its own config", c.TTL, c.Target)
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = DefaultStaleAfter
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Mirrored reports whether in is a mirrored record (it carries KeyOrigin).
func Mirrored(in *registry.Instance) bool {
	_, ok := in.Metadata[KeyOrigin]
	return ok
}

// Origin returns the origin of a mirrored record, "" for a native one.
func Origin(in *registry.Instance) string { return in.Metadata[KeyOrigin] }
