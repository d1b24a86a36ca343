package zk

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/deprecated"
	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/registry"
)

// Defaults used for the zero values of Config.
const (
	// DefaultNamespace is the root node of the registry, the namespace
	// Kratos' contrib ZooKeeper registry uses too.
	DefaultNamespace = "/microservices"
	// DefaultServer is dialled when Config has neither Client nor Servers.
	DefaultServer = "127.0.0.1:2181"
	// DefaultSessionTimeout is the session timeout asked of the server,
	// which clamps it to its [minSessionTimeout, maxSessionTimeout].
	DefaultSessionTimeout = 10 * time.Second
	// DefaultTimeout bounds calls whose ctx has no earlier deadline.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBackoff caps the backoff between retries.
	DefaultMaxBackoff = 5 * time.Second
)

// The former names of the defaults.
const (
	// Deprecated: use DefaultNamespace.
	DefaultRoot = DefaultNamespace
	// Deprecated: use DefaultTimeout.
	DefaultRequestTimeout = DefaultTimeout
	// Deprecated: use DefaultMaxBackoff.
	DefaultMaxRetryDelay = DefaultMaxBackoff
)

// Config configures a Registry. The zero value works: it connects to
// 127.0.0.1:2181 with a 10 s session, keeps its nodes under /microservices
// without credentials (world-writable, as Kratos' contrib registry does) and
// logs to slog.Default().
type Config struct {
	// Client is a ready connection to use. The Registry does not close it, and
	// Servers and SessionTimeout are then ignored. Such a connection's
	// events are not visible to the Registry, which polls its state instead
	// (every 250 ms) and forwards each of its watches with a small
	// goroutine; it cannot replace that connection after a history change
	// (see the package doc). If nil, New connects to Servers and Close
	// closes that connection, which ends the session: ZooKeeper removes the
	// Registry's nodes at once.
	Client *gozk.Conn

	// Servers are ZooKeeper addresses ("host:port"; a missing port means
	// 2181). If empty, DefaultServer. A URL ("http://host:2181") is an
	// error: ZooKeeper speaks its own protocol, with TLS only when TLS is
	// set.
	Servers []string

	// SessionTimeout is the session timeout asked of the server. A
	// registration lives this long after the process dies or is cut off.
	// If zero, DefaultSessionTimeout.
	SessionTimeout time.Duration

	// Namespace is the node under which services live, an absolute path
	// such as "/microservices" (not "/"). If empty, DefaultNamespace.
	Namespace string

	// Username and Password are digest credentials ("user:password"). If
	// Username is set, the Registry authenticates with them (AddAuth
	// "digest") before writing, and every node it creates gets the ACL
	// digest:Username:hash(Password) with all permissions plus world READ:
	// anyone can discover the services, only holders of the credentials can
	// change or delete the nodes. If Username is empty, nodes are
	// world-writable.
	Username string
	Password string

	// Timeout bounds Register, Deregister, GetService, ListServices and
	// Ping when their ctx has no earlier deadline: go-zookeeper calls take
	// no ctx and queue while disconnected. If zero, DefaultTimeout.
	Timeout time.Duration

	// MaxBackoff caps the exponential backoff (with jitter, from 100 ms)
	// between re-registration and watch retries. If zero,
	// DefaultMaxBackoff.
	MaxBackoff time.Duration

	// TLS, when not nil, makes the connections use TLS with this
	// configuration (ZooKeeper's secureClientPort); see tls.go. If nil,
	// plain TCP. Ignored with Client.
	TLS *tls.Config

	// Logger receives the Registry's log, and go-zookeeper's at Debug level.
	// If nil, slog.Default().
	Logger *slog.Logger

	// The fields' former names, honoured when the new one is not set;
	// both set to different values is an error.

	// Deprecated: use Client.
	Conn *gozk.Conn
	// Deprecated: use Namespace.
	Root string
	// Deprecated: use Username.
	User string
	// Deprecated: use Timeout.
	RequestTimeout time.Duration
	// Deprecated: use MaxBackoff.
	MaxRetryDelay time.Duration
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
	out, err := c.resolveAliases()
	if err != nil {
		return out, err
	}
	if out.Namespace == "" {
		out.Namespace = DefaultNamespace
	}
	if err := checkRoot(out.Namespace); err != nil {
		return out, err
	}
	if out.Username == "" && out.Password != "" {
		return out, fmt.Errorf("zookeeper: %w: Password set without Username", registry.ErrInvalid)
	}
	for i := 0; i < len(out.Username); i++ {
		if out.Username[i] == ':' {
			return out, fmt.Errorf("zookeeper: %w: Username %s contains ':'", registry.ErrInvalid, registry.Quote(out.Username))
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
	if out.Timeout <= 0 {
		out.Timeout = DefaultTimeout
	}
	if out.MaxBackoff <= 0 {
		out.MaxBackoff = DefaultMaxBackoff
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out, nil
}

// checkRoot returns nil if root can be the registry's root node: an absolute
// path in canonical form, not "/" (whose children include ZooKeeper's own
// /zookeeper) and not under /zookeeper, without control characters.
func checkRoot(root string) error {
	bad := root == "/" || !strings.HasPrefix(root, "/") || path.Clean(root) != root ||
		root == "/zookeeper" || strings.HasPrefix(root, "/zookeeper/")
	for i := 0; i < len(root) && !bad; i++ {
		bad = root[i] < 0x20 || root[i] == 0x7f
	}
	if bad {
		return fmt.Errorf("zookeeper: %w: Namespace %s is not an absolute path like /microservices", registry.ErrInvalid, registry.Quote(root))
	}
	return nil
}

// resolveAliases returns c with each deprecated field's value moved to its
// new name (see Config), or an error wrapping registry.ErrInvalid when both
// names are set to different values.
func (c *Config) resolveAliases() (out Config, err error) {
	out = *c
	if out.Client, err = deprecated.Alias("zookeeper", "Client", out.Client, "Conn", out.Conn); err != nil {
		return out, err
	}
	if out.Namespace, err = deprecated.Alias("zookeeper", "Namespace", out.Namespace, "Root", out.Root); err != nil {
		return out, err
	}
	if out.Username, err = deprecated.Alias("zookeeper", "Username", out.Username, "User", out.User); err != nil {
		return out, err
	}
	if out.Timeout, err = deprecated.Alias("zookeeper", "Timeout", out.Timeout, "RequestTimeout", out.RequestTimeout); err != nil {
		return out, err
	}
	if out.MaxBackoff, err = deprecated.Alias("zookeeper", "MaxBackoff", out.MaxBackoff, "MaxRetryDelay", out.MaxRetryDelay); err != nil {
		return out, err
	}
	out.Conn, out.Root, out.User, out.RequestTimeout, out.MaxRetryDelay = nil, "", "", 0, 0
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
