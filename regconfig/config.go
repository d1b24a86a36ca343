package regconfig

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/regchain/regchain/registry"
)

// Backend types.
const (
	TypeEtcd   = "etcd"
	TypeConsul = "consul"
	TypeZK     = "zk"
	TypeFile   = "file"
)

// Config is one registry configuration: the chain's backends in order,
// its snapshot, its static last tier and its options. See the package
// documentation for the YAML and compact forms.
type Config struct {
	// Backends are the tiers, in order of preference. At least one backend
	// or a static tier is required.
	Backends []Backend `json:"backends,omitempty" yaml:"backends,omitempty"`
	// Snapshot is the chain's snapshot store; no snapshot if Path is empty.
	Snapshot Snapshot `json:"snapshot,omitzero" yaml:"snapshot,omitempty"`
	// Static is the static last tier; none if it has neither instances
	// nor a file.
	Static Static `json:"static,omitzero" yaml:"static,omitempty"`
	// Chain holds the chain's options.
	Chain ChainConfig `json:"chain,omitzero" yaml:"chain,omitempty"`
}

// Backend is one registry backend.
type Backend struct {
	// Name is the tier's name in the chain (Update.Source, Status, logs).
	// If empty, the type; "etcd-2" for a second etcd, and so on.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Type is etcd, consul, zk (or zookeeper) or file.
	Type string `json:"type" yaml:"type"`
	// Endpoints are host:port addresses (etcd: also https://host:port).
	// Consul takes one. If empty, the backend's default. Not for file.
	Endpoints []string `json:"endpoints,omitempty" yaml:"endpoints,omitempty"`
	// Namespace is etcd's key prefix or ZooKeeper's root node. If empty,
	// the backend's default (/microservices). Not for consul or file.
	Namespace string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	// Datacenter is Consul's datacenter. Consul only.
	Datacenter string `json:"datacenter,omitempty" yaml:"datacenter,omitempty"`
	// Username and Password authenticate to etcd (user/password) or
	// ZooKeeper (digest). A password is better kept out of the config:
	// see PasswordFile and PasswordEnv.
	Username string `json:"username,omitempty" yaml:"username,omitempty"`
	Password string `json:"password,omitempty" yaml:"password,omitempty"`
	// PasswordFile names a file holding the password (a trailing newline
	// is dropped), read by Open; not with Password.
	PasswordFile string `json:"password_file,omitempty" yaml:"password_file,omitempty"`
	// PasswordEnv names an environment variable holding the password, used
	// when Password and PasswordFile are empty.
	PasswordEnv string `json:"password_env,omitempty" yaml:"password_env,omitempty"`
	// Token is Consul's ACL token.
	Token string `json:"token,omitempty" yaml:"token,omitempty"`
	// TokenFile names a file holding the token (a trailing newline is
	// dropped), read by Open; not with Token.
	TokenFile string `json:"token_file,omitempty" yaml:"token_file,omitempty"`
	// TokenEnv names an environment variable holding the token, used when
	// Token and TokenFile are empty.
	TokenEnv string `json:"token_env,omitempty" yaml:"token_env,omitempty"`
	// TTL is how long a registration outlives its process: etcd's lease
	// TTL, Consul's check TTL, ZooKeeper's session timeout.
	TTL Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	// Timeout bounds each request to the backend.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// TLS configures TLS to the backend (etcd, consul, zk: ZooKeeper's
	// secure client port).
	TLS TLS `json:"tls,omitzero" yaml:"tls,omitempty"`
	// Path is the bbolt file of a file backend.
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
	// ReadOnly makes the tier read-only in the chain: it is read but never
	// written.
	ReadOnly bool `json:"read_only,omitempty" yaml:"read_only,omitempty"`
}

// TLS is a client TLS configuration read from files.
type TLS struct {
	// Enabled turns TLS on with the system's roots when no file is set;
	// setting any file also turns it on.
	Enabled bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// CAFile is a PEM bundle of the CAs to trust instead of the system's.
	CAFile string `json:"ca_file,omitempty" yaml:"ca_file,omitempty"`
	// CertFile and KeyFile are the client certificate and key (PEM), for
	// mutual TLS. Both or neither.
	CertFile string `json:"cert_file,omitempty" yaml:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty" yaml:"key_file,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"server_name,omitempty" yaml:"server_name,omitempty"`
	// InsecureSkipVerify turns certificate checking off. For tests only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty" yaml:"insecure_skip_verify,omitempty"`
}

// On reports whether TLS is configured.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Snapshot configures the chain's snapshot store (adapters/file).
type Snapshot struct {
	// Path is the snapshot file; no snapshot if empty.
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
	// MaxAge is chain.WithSnapshotMaxAge.
	MaxAge Duration `json:"max_age,omitempty" yaml:"max_age,omitempty"`
	// FlushInterval is chain.WithFlushInterval.
	FlushInterval Duration `json:"flush_interval,omitempty" yaml:"flush_interval,omitempty"`
}

// Static configures the static last tier (adapters/static).
type Static struct {
	// Instances are fixed instances.
	Instances []*registry.Instance `json:"instances,omitempty" yaml:"instances,omitempty"`
	// File is a JSON array of instances, reloaded when it changes.
	File string `json:"file,omitempty" yaml:"file,omitempty"`
	// PollInterval is how often File is checked for changes.
	PollInterval Duration `json:"poll_interval,omitempty" yaml:"poll_interval,omitempty"`
}

// On reports whether a static tier is configured.
func (s Static) On() bool { return len(s.Instances) > 0 || s.File != "" }

// ChainConfig holds the chain's options (package chain; zero values are its
// defaults).
type ChainConfig struct {
	Name             string   `json:"name,omitempty" yaml:"name,omitempty"`
	ReadPolicy       string   `json:"read_policy,omitempty" yaml:"read_policy,omitempty"` // first-healthy or merge
	ProbeInterval    Duration `json:"probe_interval,omitempty" yaml:"probe_interval,omitempty"`
	ProbeTimeout     Duration `json:"probe_timeout,omitempty" yaml:"probe_timeout,omitempty"`
	CallTimeout      Duration `json:"call_timeout,omitempty" yaml:"call_timeout,omitempty"`
	FailureThreshold int      `json:"failure_threshold,omitempty" yaml:"failure_threshold,omitempty"`
	FailbackAfter    Duration `json:"failback_after,omitempty" yaml:"failback_after,omitempty"`
	StrictRegister   bool     `json:"strict_register,omitempty" yaml:"strict_register,omitempty"`
	Guard            Guard    `json:"guard,omitzero" yaml:"guard,omitempty"`
}

// Guard is chain.Guard.
type Guard struct {
	Disabled      bool     `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	MaxDropShare  float64  `json:"max_drop_share,omitempty" yaml:"max_drop_share,omitempty"`
	Window        Duration `json:"window,omitempty" yaml:"window,omitempty"`
	Confirmations int      `json:"confirmations,omitempty" yaml:"confirmations,omitempty"`
}

// FieldError is a fault in one field of a Config. It matches
// registry.ErrInvalid with errors.Is.
type FieldError struct {
	// Field is the field's path: "backends[1].endpoints[0]", "chain.name".
	Field string
	// Problem says what is wrong.
	Problem string
}

// Error returns "regconfig: FIELD: PROBLEM".
func (e *FieldError) Error() string { return "regconfig: " + e.Field + ": " + e.Problem }

// Is reports whether target is registry.ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == registry.ErrInvalid }

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Field: path, Problem: fmt.Sprintf(format, args...)}
}

// normType returns the canonical backend type.
func normType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	if t == "zookeeper" {
		return TypeZK
	}
	return t
}

// Validate checks the config and returns the first fault, naming the
// field. It wraps registry.ErrInvalid.
func (c *Config) Validate() error {
	if len(c.Backends) == 0 && !c.Static.On() {
		return fieldErr("backends", "no backend and no static tier: nothing to read from")
	}
	names := make(map[string]string)
	for i := range c.Backends {
		b := &c.Backends[i]
		path := fmt.Sprintf("backends[%d]", i)
		if err := b.validate(path); err != nil {
			return err
		}
		name := c.tierName(i)
		if prev, dup := names[name]; dup {
			return fieldErr(path+".name", "%s is also the name of %s", registry.Quote(name), prev)
		}
		names[name] = path
	}
	if c.Static.On() {
		if _, dup := names["static"]; dup {
			return fieldErr("static", "a backend is already named \"static\"")
		}
		for i, in := range c.Static.Instances {
			p := fmt.Sprintf("static.instances[%d]", i)
			if in == nil {
				return fieldErr(p, "null")
			}
			if err := registry.Validate(in); err != nil {
				return fmt.Errorf("regconfig: %s: %w", p, err)
			}
		}
		if c.Static.PollInterval < 0 {
			return fieldErr("static.poll_interval", "negative")
		}
	}
	if err := c.Chain.validate(); err != nil {
		return err
	}
	if c.Snapshot.MaxAge < 0 {
		return fieldErr("snapshot.max_age", "negative")
	}
	if c.Snapshot.FlushInterval < 0 {
		return fieldErr("snapshot.flush_interval", "negative")
	}
	return nil
}

// tierName returns the chain name of backend i.
func (c *Config) tierName(i int) string {
	b := c.Backends[i]
	if b.Name != "" {
		return b.Name
	}
	t := normType(b.Type)
	n := 0
	for j := 0; j <= i; j++ {
		if c.Backends[j].Name == "" && normType(c.Backends[j].Type) == t {
			n++
		}
	}
	if n == 1 {
		return t
	}
	return t + "-" + strconv.Itoa(n)
}

func (b *Backend) validate(path string) error {
	t := normType(b.Type)
	switch t {
	case TypeEtcd, TypeConsul, TypeZK, TypeFile:
	case "":
		return fieldErr(path+".type", "missing: want etcd, consul, zk or file")
	default:
		return fieldErr(path+".type", "%s: want etcd, consul, zk or file", registry.Quote(b.Type))
	}
	if b.Name != "" && (b.Name == "snapshot" || strings.Contains(b.Name, "+")) {
		return fieldErr(path+".name", "%s: reserved or contains '+'", registry.Quote(b.Name))
	}
	only := func(field string, set bool, types ...string) error {
		for _, ok := range types {
			if t == ok {
				return nil
			}
		}
		if set {
			return fieldErr(path+"."+field, "not used by %s (only %s)", t, strings.Join(types, ", "))
		}
		return nil
	}
	checks := []error{
		only("endpoints", len(b.Endpoints) > 0, TypeEtcd, TypeConsul, TypeZK),
		only("namespace", b.Namespace != "", TypeEtcd, TypeZK),
		only("datacenter", b.Datacenter != "", TypeConsul),
		only("username", b.Username != "", TypeEtcd, TypeZK),
		only("token", b.Token != "" || b.TokenEnv != "" || b.TokenFile != "", TypeConsul),
		only("tls", b.TLS.On(), TypeEtcd, TypeConsul, TypeZK),
		only("ttl", b.TTL != 0, TypeEtcd, TypeConsul, TypeZK),
		only("path", b.Path != "", TypeFile),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if t == TypeFile && b.Path == "" {
		return fieldErr(path+".path", "missing: a file backend needs its file")
	}
	if t == TypeConsul && len(b.Endpoints) > 1 {
		return fieldErr(path+".endpoints", "consul takes one agent address, not %d", len(b.Endpoints))
	}
	for j, ep := range b.Endpoints {
		if err := checkEndpoint(ep, t); err != nil {
			return fieldErr(fmt.Sprintf("%s.endpoints[%d]", path, j), "%s: %v", registry.Quote(Redact(ep)), err)
		}
		if scheme, _, ok := strings.Cut(ep, "://"); ok && strings.EqualFold(scheme, "http") && b.TLS.On() {
			return fieldErr(fmt.Sprintf("%s.endpoints[%d]", path, j), "http:// with TLS settings: the connection would be plaintext; write https://")
		}
	}
	if (b.Password != "" || b.PasswordEnv != "" || b.PasswordFile != "") && b.Username == "" {
		return fieldErr(path+".password", "a password without a username")
	}
	if b.Password != "" && b.PasswordFile != "" {
		return fieldErr(path+".password_file", "and a password: give one")
	}
	if b.Token != "" && b.TokenFile != "" {
		return fieldErr(path+".token_file", "and a token: give one")
	}
	if b.Namespace != "" && !strings.HasPrefix(b.Namespace, "/") {
		return fieldErr(path+".namespace", "%s: want an absolute path such as /microservices", registry.Quote(b.Namespace))
	}
	if b.TTL < 0 {
		return fieldErr(path+".ttl", "negative")
	}
	if b.Timeout < 0 {
		return fieldErr(path+".timeout", "negative")
	}
	if (b.TLS.CertFile == "") != (b.TLS.KeyFile == "") {
		return fieldErr(path+".tls", "cert_file and key_file go together")
	}
	return nil
}

// checkEndpoint checks one host:port (etcd also takes http(s)://host:port;
// zk also a bare host). Its errors quote nothing: the caller shows the
// endpoint, redacted.
func checkEndpoint(ep, typ string) error {
	hostport := ep
	if typ == TypeEtcd {
		if s, rest, ok := strings.Cut(ep, "://"); ok {
			if !strings.EqualFold(s, "http") && !strings.EqualFold(s, "https") {
				return fmt.Errorf("the scheme is not http or https")
			}
			hostport = rest
		}
	}
	if strings.Contains(hostport, "@") {
		return fmt.Errorf("credentials go in username and password, not in the address")
	}
	if typ == TypeZK && !strings.Contains(hostport, ":") {
		hostport += ":2181"
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	if !validHost(host) {
		// A KEY=VALUE written where the address goes (a forgotten '?')
		// is not a host, and may be a secret that %v would then print.
		return fmt.Errorf("the host is neither a DNS name nor an IP address")
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("the port is not a number between 1 and 65535")
	}
	return nil
}

// validHost reports whether host is an IP address or a DNS name (letters,
// digits, '-', '_' and '.', at most 253 bytes).
func validHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if len(host) > 253 {
		return false
	}
	for _, c := range []byte(host) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func (c *ChainConfig) validate() error {
	switch c.ReadPolicy {
	case "", "first-healthy", "merge":
	default:
		return fieldErr("chain.read_policy", "%s: want first-healthy or merge", registry.Quote(c.ReadPolicy))
	}
	if c.Name != "" && strings.ContainsAny(c.Name, " \t\n") {
		return fieldErr("chain.name", "%s contains white space", registry.Quote(c.Name))
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{
		{"probe_interval", c.ProbeInterval}, {"probe_timeout", c.ProbeTimeout}, {"call_timeout", c.CallTimeout},
		{"failback_after", c.FailbackAfter}, {"guard.window", c.Guard.Window},
	} {
		if f.d < 0 {
			return fieldErr("chain."+f.name, "negative")
		}
	}
	if c.FailureThreshold < 0 {
		return fieldErr("chain.failure_threshold", "negative")
	}
	if c.Guard.Confirmations < 0 {
		return fieldErr("chain.guard.confirmations", "negative")
	}
	if c.Guard.MaxDropShare < 0 || c.Guard.MaxDropShare > 1 {
		return fieldErr("chain.guard.max_drop_share", "%v: want a share between 0 and 1", c.Guard.MaxDropShare)
	}
	return nil
}
