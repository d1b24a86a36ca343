package consul

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/deprecated"
	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/registry"
)

// Defaults of the Config fields left zero.
const (
	// DefaultTTL is the TTL of the check that keeps a registration passing.
	// The heartbeat runs every TTL/3, so two heartbeats may be lost before
	// the instance turns critical and leaves passing-only queries.
	DefaultTTL = 15 * time.Second

	// DefaultDeregisterCriticalServiceAfter is how long a registration may
	// stay critical (its process gone) before the agent removes it. Consul
	// does not go below one minute.
	DefaultDeregisterCriticalServiceAfter = time.Minute

	// DefaultWaitTime is how long one blocking query of a watcher waits for
	// a change. A watcher notices a dead connection within about WaitTime +
	// 1/16 + 5s, so it is kept well under Consul's 5 minute default.
	DefaultWaitTime = time.Minute

	// DefaultTimeout bounds the registry's own non-blocking requests
	// (heartbeats, watch reads); callers' requests are bounded by their
	// ctx instead.
	DefaultTimeout = 10 * time.Second

	// DefaultRequestTimeout is DefaultTimeout.
	//
	// Deprecated: use DefaultTimeout.
	DefaultRequestTimeout = DefaultTimeout

	// MinTTL is the shortest TTL New accepts.
	MinTTL = time.Second

	// MaxWaitTime is the longest blocking-query wait Consul honours.
	MaxWaitTime = 10 * time.Minute
)

// Config configures a Registry. The zero Config talks to the agent that
// consulapi.DefaultConfig finds (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, ...;
// else http://127.0.0.1:8500) with the defaults above.
type Config struct {
	// Client is a ready Consul API client. When set, Address, Scheme, Token
	// and TLS are ignored and the caller keeps ownership of the client (Close
	// does not close its connections); its HTTP client's Timeout, if any,
	// must be longer than WaitTime plus a sixteenth.
	Client *consulapi.Client

	// Address is the agent's HTTP address, "host:port" (or
	// "unix:///path"). If empty, consulapi.DefaultConfig's.
	Address string
	// Scheme is "http" or "https". If empty, "https" when TLS is set, else
	// consulapi.DefaultConfig's. TLS (or Scheme "https") together with
	// Scheme "http" or an http:// Address is an error: which one was meant
	// is not for the registry to guess.
	Scheme string
	// Token is the ACL token sent with every request. If empty,
	// consulapi.DefaultConfig's (CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE).
	// It needs service:write on the services it registers and service:read
	// (plus node:read) on those it reads.
	Token string
	// TLS is the client TLS configuration (CAs, client certificate). If nil,
	// consulapi.DefaultConfig's (CONSUL_CACERT, ...).
	TLS *tls.Config
	// Datacenter is the datacenter reads and watches query. If empty, the
	// agent's own. Registrations always go to the local agent.
	Datacenter string

	// TTL is the registration's check TTL; the heartbeat runs every TTL/3.
	// If zero, DefaultTTL. At least MinTTL.
	TTL time.Duration
	// DeregisterCriticalServiceAfter is how long the agent keeps a
	// registration whose check is critical. If zero,
	// DefaultDeregisterCriticalServiceAfter; Consul raises values under a
	// minute to a minute.
	DeregisterCriticalServiceAfter time.Duration
	// WaitTime is the wait of each blocking query. If zero,
	// DefaultWaitTime. At most MaxWaitTime.
	WaitTime time.Duration
	// Timeout bounds the registry's own non-blocking requests. If zero,
	// DefaultTimeout. Heartbeats are also bounded by TTL/2.
	Timeout time.Duration
	// RequestTimeout is Timeout's former name, honoured when Timeout is
	// zero; both set to different values is an error.
	//
	// Deprecated: use Timeout.
	RequestTimeout time.Duration

	// Logger receives keepalive and watch events. If nil, slog.Default().
	Logger *slog.Logger
}

// rawConfig is Config without its methods, for redaction.
type rawConfig Config

// Format implements fmt.Formatter: every verb prints the fields with the
// Token masked.
func (cfg Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, cfg.masked()) }

// LogValue implements slog.LogValuer: the fields with the Token masked.
func (cfg Config) LogValue() slog.Value { return redact.LogValue(cfg.masked()) }

func (cfg Config) masked() any {
	type Config rawConfig
	m := Config(cfg)
	m.Token = redact.Secret(m.Token)
	return m
}

// withDefaults returns cfg with zero fields set to their defaults, or an
// error wrapping registry.ErrInvalid for values out of range.
func (cfg Config) withDefaults() (Config, error) {
	timeout, err := deprecated.Alias("consul", "Timeout", cfg.Timeout, "RequestTimeout", cfg.RequestTimeout)
	if err != nil {
		return cfg, err
	}
	cfg.Timeout, cfg.RequestTimeout = timeout, 0
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.DeregisterCriticalServiceAfter == 0 {
		cfg.DeregisterCriticalServiceAfter = DefaultDeregisterCriticalServiceAfter
	}
	if cfg.WaitTime == 0 {
		cfg.WaitTime = DefaultWaitTime
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	addrScheme, _, hasScheme := strings.Cut(cfg.Address, "://")
	switch {
	case cfg.Client == nil && (cfg.TLS != nil || strings.EqualFold(cfg.Scheme, "https")) &&
		(strings.EqualFold(cfg.Scheme, "http") || hasScheme && strings.EqualFold(addrScheme, "http")):
		return cfg, fmt.Errorf("consul: %w: TLS is set and so is http (Scheme or an http:// Address): remove one", registry.ErrInvalid)
	case cfg.TTL < MinTTL:
		return cfg, fmt.Errorf("consul: %w: TTL %v is shorter than %v", registry.ErrInvalid, cfg.TTL, MinTTL)
	case cfg.DeregisterCriticalServiceAfter < 0:
		return cfg, fmt.Errorf("consul: %w: negative DeregisterCriticalServiceAfter %v", registry.ErrInvalid, cfg.DeregisterCriticalServiceAfter)
	case cfg.WaitTime < 0 || cfg.WaitTime > MaxWaitTime:
		return cfg, fmt.Errorf("consul: %w: WaitTime %v is not in (0, %v]", registry.ErrInvalid, cfg.WaitTime, MaxWaitTime)
	case cfg.Timeout < 0:
		return cfg, fmt.Errorf("consul: %w: negative Timeout %v", registry.ErrInvalid, cfg.Timeout)
	}
	return cfg, nil
}
