package zk

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/registry"
)

// Defaults used for the zero values of Config.
const (
	// DefaultRoot is the root node of the registry, the namespace Kratos'
	// contrib ZooKeeper registry uses too.
	DefaultRoot = "/microservices"
	// DefaultServer is dialled when Config has neither Conn nor Servers.
	DefaultServer = "127.0.0.1:2181"
	// DefaultSessionTimeout is the session timeout asked of the server,
	// which clamps it to its [minSessionTimeout, maxSessionTimeout].
	DefaultSessionTimeout = 10 * time.Second
	// DefaultRequestTimeout bounds calls whose ctx has no earlier deadline.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultMaxRetryDelay caps the backoff between retries.
	DefaultMaxRetryDelay = 5 * time.Second
)

// Config configures a Registry. The zero value works: it connects to
// 127.0.0.1:2181 with a 10 s session, keeps its nodes under /microservices
// without credentials (world-writable, as Kratos' contrib registry does) and
// logs to slog.Default().
type Config struct {
	// Conn is a ready connection to use. The Registry does not close it, and
	// Servers and SessionTimeout are then ignored. Such a connection's
	// events are not visible to the Registry, which polls its state instead
	// (every 250 ms) and forwards each of its watches with a small
	// goroutine; it cannot replace that connection after a history change
	// (see the package doc). If nil, New connects to Servers and Close
	// closes that connection, which ends the session: ZooKeeper removes the
	// Registry's nodes at once.
	Conn *gozk.Conn

	// Servers are ZooKeeper addresses ("host:port"; a missing port means
	// 2181). If empty, DefaultServer. A URL ("http://host:2181") is an
	// error: ZooKeeper speaks its own protocol, with TLS only when TLS is
	// set.
	Servers []string

	// SessionTimeout is the session timeout asked of the server. A
	// registration lives this long after the process dies or is cut off.
	// If zero, DefaultSessionTimeout.
	SessionTimeout time.Duration

	// Root is the node under which services live, an absolute path such as
	// "/microservices" (not "/"). If empty, DefaultRoot.
	Root string

	// User and Password are digest credentials ("user:password"). If User is
	// set, the Registry authenticates with them (AddAuth "digest") before
	// writing, and every node it creates gets the ACL
	// digest:User:hash(Password) with all permissions plus world READ: anyone
	// can discover the services, only holders of the credentials can change
	// or delete the nodes. If User is empty, nodes are world-writable.
	User     string
	Password string

	// RequestTimeout bounds Register, Deregister, GetService, ListServices and
	// Ping when their ctx has no earlier deadline: go-zookeeper calls take no
	// ctx and queue while disconnected. If zero, DefaultRequestTimeout.
	RequestTimeout time.Duration

	// MaxRetryDelay caps the exponential backoff (with jitter, from 100 ms)
	// between re-registration and watch retries. If zero,
	// DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration

	// TLS, when not nil, makes the connections use TLS with this
	// configuration (ZooKeeper's secureClientPort); see tls.go. If nil,
	// plain TCP. Ignored with Conn.
	TLS *tls.Config

	// Logger receives the Registry's log, and go-zookeeper's at Debug level.
	// If nil, slog.Default().
	Logger *slog.Logger
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

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Root == "" {
		out.Root = DefaultRoot
	}
	if err := checkRoot(out.Root); err != nil {
		return out, err
	}
	if out.User == "" && out.Password != "" {
		return out, fmt.Errorf("zookeeper: %w: Password set without User", registry.ErrInvalid)
	}
	for i := 0; i < len(out.User); i++ {
		if out.User[i] == ':' {
			return out, fmt.Errorf("zookeeper: %w: User %s contains ':'", registry.ErrInvalid, registry.Quote(out.User))
		}
	}
	for i, srv := range out.Servers {
		if scheme, _, ok := strings.Cut(srv, "://"); ok {
			tls := ""
			if out.TLS != nil && strings.EqualFold(scheme, "http") {
				tls = " (and http:// while TLS is set says plaintext)"
			}
			return out, fmt.Errorf("zookeeper: %w: server %d is a URL%s: write host:port; TLS is Config.TLS", registry.ErrInvalid, i, tls)
		}
	}
	if len(out.Servers) == 0 {
		out.Servers = []string{DefaultServer}
	}
	if out.SessionTimeout <= 0 {
		out.SessionTimeout = DefaultSessionTimeout
	}
	if out.RequestTimeout <= 0 {
		out.RequestTimeout = DefaultRequestTimeout
	}
	if out.MaxRetryDelay <= 0 {
		out.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out, nil
}

// zkLogger adapts go-zookeeper's Printf logging (to stdout by default) to
// slog, at Debug: the Registry logs what matters (sessions lost and
// regained, registrations restored) itself.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	if z.l.Enabled(context.Background(), slog.LevelDebug) {
		z.l.Debug(fmt.Sprintf(format, args...), "component", "go-zookeeper")
	}
}
