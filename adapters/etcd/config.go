package etcd

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/registry"
)

// Defaults applied by New to the zero fields of Config.
const (
	// DefaultNamespace is Kratos' contrib etcd registry's default prefix, so
	// both find each other's records without configuration.
	DefaultNamespace = "/microservices"
	// DefaultEndpoint is etcd's default client address.
	DefaultEndpoint = "127.0.0.1:2379"
	// DefaultTTL is the lease TTL: a crashed process disappears from
	// discovery this long after its last keepalive.
	DefaultTTL = 15 * time.Second
	// DefaultTimeout bounds each etcd request.
	DefaultTimeout = 5 * time.Second
	// DefaultDialTimeout bounds New's authentication and each connection
	// attempt of a client New creates.
	DefaultDialTimeout = 5 * time.Second
	// DefaultMaxBackoff caps the delay between retries.
	DefaultMaxBackoff = 5 * time.Second
	// MaxReconnectDelay caps the delay between connection attempts of a
	// client New creates: a registration is back within about this long
	// (plus one round trip) after etcd answers again, however long it was
	// away. A refused connection attempt costs etcd nothing.
	MaxReconnectDelay = 800 * time.Millisecond
)

// Config configures New. The zero value is usable: it talks to etcd on
// 127.0.0.1:2379 under "/microservices" with 15 s leases.
type Config struct {
	// Client is a ready etcd client. When set, Endpoints, DialTimeout, TLS,
	// Username and Password are ignored and Close leaves the client open:
	// it belongs to the caller.
	Client *clientv3.Client

	// Endpoints are the etcd client addresses ("10.0.0.1:2379" or
	// "https://etcd-1:2379"). If empty, 127.0.0.1:2379. With TLS set, an
	// http:// endpoint is an error (etcd's client would talk plaintext to
	// it, password included); user info ("https://user:pw@host") is always
	// one: credentials go in Username and Password.
	Endpoints []string
	// DialTimeout bounds each connection attempt and, when Username is set,
	// the authentication New performs. New does not otherwise wait for a
	// connection: it succeeds while etcd is down. If zero, 5s.
	DialTimeout time.Duration
	// TLS, when not nil, makes the connection use TLS with this
	// configuration. If nil, plain TCP.
	TLS *tls.Config
	// Username and Password authenticate to etcd when both are set.
	Username string
	Password string

	// Namespace is the key prefix; instances live at
	// <Namespace>/<name>/<id>. Trailing "/"s are dropped. If empty (or
	// "/"), "/microservices" (Kratos' default).
	Namespace string
	// TTL is the lease TTL of each registration, rounded up to whole
	// seconds: a process that dies disappears this long after its last
	// keepalive. etcd raises TTLs below its minimum (2 s with the default
	// election timeout). If zero, 15s.
	TTL time.Duration
	// Timeout bounds each etcd request: a caller's ctx with a later
	// deadline (or none) is cut to Timeout, and so are the registry's own
	// background requests. If zero, 5s.
	Timeout time.Duration
	// MaxBackoff caps the jittered exponential delay between retries of
	// re-registration and watch resumption while etcd is reachable but
	// refuses or fails (a lost connection coming back wakes the retries at
	// once), and the delay between reconnection attempts of a client New
	// creates when lower than MaxReconnectDelay. If zero, 5s.
	MaxBackoff time.Duration
	// PassivePing is how recent an answer from etcd to the registry's own
	// traffic (a lease keepalive, a write, a read, a watch event) must be
	// for Ping to succeed without sending a request, while the client's
	// connection is ready. A process with a registration then proves etcd
	// healthy with the keepalives it sends anyway, so the chain's probes of
	// a fleet cost etcd nothing at steady state. The price: a partition
	// that leaves the connection open (packets dropped, no reset) is seen
	// by Ping up to this long after the last answer; a crash or a refused
	// connection is seen at once (the connection leaves the ready state).
	// If zero, TTL/2 + 1s: clientv3 renews a lease about every TTL/3 (seen
	// here: up to TTL/3 + 1s between two answers), so a registry with a
	// registration never probes.
	// If negative, every Ping sends its request.
	PassivePing time.Duration
	// Codec is the record layout. If nil, KratosCodec; microplugin.EtcdCodec
	// for go-micro etcd plugin fleets (its Namespace default is
	// /micro/registry).
	Codec Codec
	// Logger receives the registry's warnings (skipped malformed records,
	// lost leases, restored keys) and debug messages. If nil,
	// slog.Default().
	Logger *slog.Logger

	// noConnMonitor turns off watching the client's connection state, as if
	// other endpoints of the cluster stayed up: tests use it to make a
	// broken watch stream resume through clientv3 from its last revision.
	noConnMonitor bool
	// hubLinger overrides how long the watch hub outlives its last watcher
	// (see hub); negative: not at all. Tests use it.
	hubLinger time.Duration
}

// rawConfig is Config without its methods, for redaction.
type rawConfig Config

// Format implements fmt.Formatter: every verb prints the fields with the
// Password masked.
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.masked()) }

// LogValue implements slog.LogValuer: the fields with the Password masked.
func (c Config) LogValue() slog.Value { return redact.LogValue(c.masked()) }

func (c Config) masked() any {
	type Config rawConfig
	m := Config(c)
	m.Password = redact.Secret(m.Password)
	return m
}

// withDefaults returns c with its zero fields set.
func (c Config) withDefaults() Config {
	if c.Client == nil && len(c.Endpoints) == 0 {
		c.Endpoints = []string{DefaultEndpoint}
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Codec == nil {
		c.Codec = KratosCodec{}
	}
	c.Namespace = strings.TrimRight(c.Namespace, "/")
	if c.Namespace == "" {
		c.Namespace = strings.TrimRight(c.Codec.Namespace(), "/")
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.PassivePing == 0 {
		c.PassivePing = time.Duration(ttlSeconds(c.TTL))*time.Second/2 + time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// checkEndpoints returns an error wrapping registry.ErrInvalid for an
// endpoint etcd's client would use in a way the config does not say: in
// plaintext although TLS is set, or with credentials in the URL (which
// messages would then show).
func (c Config) checkEndpoints() error {
	if c.Client != nil {
		return nil
	}
	for i, ep := range c.Endpoints {
		scheme, rest, ok := strings.Cut(ep, "://")
		if !ok {
			continue
		}
		if c.TLS != nil && strings.EqualFold(scheme, "http") {
			return fmt.Errorf("etcd: %w: endpoint %d is http:// and TLS is set: the client would talk plaintext to it; write https://", registry.ErrInvalid, i)
		}
		if host, _, _ := strings.Cut(rest, "/"); strings.Contains(host, "@") {
			return fmt.Errorf("etcd: %w: endpoint %d holds user info: set Username and Password instead", registry.ErrInvalid, i)
		}
	}
	return nil
}

// ttlSeconds returns the TTL in whole seconds, rounded up, at least 1.
func ttlSeconds(d time.Duration) int64 {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}
