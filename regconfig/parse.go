package regconfig

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/registry"
)

// params lists the parameters each element of the compact form accepts.
var params = map[string][]string{
	TypeEtcd:   {"ca", "cert", "insecure_skip_verify", "key", "name", "namespace", "password", "password_file", "read_only", "server_name", "timeout", "tls", "ttl", "username"},
	TypeConsul: {"ca", "cert", "dc", "insecure_skip_verify", "key", "name", "read_only", "scheme", "server_name", "timeout", "tls", "token", "token_file", "ttl"},
	TypeZK:     {"ca", "cert", "insecure_skip_verify", "key", "name", "password", "password_file", "read_only", "root", "server_name", "timeout", "tls", "ttl", "user"},
	"static":   {"poll"},
	"snapshot": {"flush", "max_age"},
	"chain": {"call_timeout", "failback_after", "failure_threshold", "guard", "guard_confirmations", "guard_max_drop_share",
		"guard_window", "name", "probe_interval", "probe_timeout", "read_policy", "strict_register"},
}

// secretParams are the parameters whose values are secrets. Redact shows
// the value of every other known parameter, and masks the rest.
var secretParams = []string{"password", "token"}

// publicParams are the known parameters without a secret value.
var publicParams = func() map[string]bool {
	out := map[string]bool{}
	for _, ps := range params {
		for _, p := range ps {
			if !slices.Contains(secretParams, p) {
				out[p] = true
			}
		}
	}
	return out
}()

// SyntaxError is a fault in the compact form. It matches
// registry.ErrInvalid with errors.Is.
type SyntaxError struct {
	// Element is the faulty element, its secrets masked (Redact).
	Element string
	// Problem says what is wrong.
	Problem string
}

// Error returns `regconfig: "ELEMENT": PROBLEM`, the element quoted by
// registry.Quote (bounded, escaped).
func (e *SyntaxError) Error() string {
	return "regconfig: " + registry.Quote(e.Element) + ": " + e.Problem
}

// Is reports whether target is registry.ErrInvalid.
func (e *SyntaxError) Is(target error) bool { return target == registry.ErrInvalid }

// usageErr is a fault in the compact form; spec is already redacted.
func usageErr(spec, format string, args ...any) error {
	return &SyntaxError{Element: spec, Problem: fmt.Sprintf(format, args...)}
}

// Parse parses the compact form: elements separated by "|" (see the
// package documentation) — backends in order, and at most one static,
// snapshot and chain element. The result is validated. Errors name the
// element (with its secrets masked) and what is wrong, and wrap
// registry.ErrInvalid.
func Parse(s string) (Config, error) {
	var c Config
	seen := map[string]bool{}
	for raw := range strings.SplitSeq(s, "|") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return Config{}, usageErr(Redact(s), "empty element (two '|' in a row, or one at an end)")
		}
		scheme, rest, _ := strings.Cut(raw, ":")
		scheme = strings.ToLower(scheme)
		switch scheme {
		case "static", "snapshot", "chain":
			if seen[scheme] {
				return Config{}, usageErr(Redact(raw), "a second %s element", scheme)
			}
			seen[scheme] = true
			if err := c.parseExtra(scheme, rest, Redact(raw)); err != nil {
				return Config{}, err
			}
		default:
			b, err := ParseBackend(raw)
			if err != nil {
				return Config{}, err
			}
			c.Backends = append(c.Backends, b)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseExtra parses a static, snapshot or chain element; rest follows the
// scheme's ':'.
func (c *Config) parseExtra(scheme, rest, spec string) error {
	var path, rawQuery string
	if scheme == "chain" {
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, "//"), "?")
		rawQuery = rest
	} else {
		p, ok := strings.CutPrefix(rest, "//")
		if !ok {
			return usageErr(spec, "want %s:///path/to/file", scheme)
		}
		path, rawQuery, _ = strings.Cut(p, "?")
		if path == "" {
			return usageErr(spec, "no file path (%s:///path/to/file)", scheme)
		}
	}
	q, err := query(spec, scheme, rawQuery)
	if err != nil {
		return err
	}
	p := paramParser{spec: spec, q: q}
	switch scheme {
	case "static":
		c.Static.File = path
		p.duration("poll", &c.Static.PollInterval)
	case "snapshot":
		c.Snapshot.Path = path
		p.duration("max_age", &c.Snapshot.MaxAge)
		p.duration("flush", &c.Snapshot.FlushInterval)
	case "chain":
		ch := &c.Chain
		ch.Name = q.Get("name")
		ch.ReadPolicy = q.Get("read_policy")
		p.duration("probe_interval", &ch.ProbeInterval)
		p.duration("probe_timeout", &ch.ProbeTimeout)
		p.duration("call_timeout", &ch.CallTimeout)
		p.duration("failback_after", &ch.FailbackAfter)
		p.integer("failure_threshold", &ch.FailureThreshold)
		p.boolean("strict_register", &ch.StrictRegister)
		var guard = true
		p.boolean("guard", &guard)
		ch.Guard.Disabled = !guard
		p.duration("guard_window", &ch.Guard.Window)
		p.integer("guard_confirmations", &ch.Guard.Confirmations)
		p.float("guard_max_drop_share", &ch.Guard.MaxDropShare)
	}
	return p.err
}

// ParseBackend parses one backend URL of the compact form:
// etcd://, consul://, zk:// (or zookeeper://) or file://. It does not
// validate the result beyond the syntax; Parse and Validate do.
func ParseBackend(raw string) (Backend, error) {
	spec := Redact(raw)
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return Backend{}, usageErr(spec, "want SCHEME://ADDRESS with scheme etcd, consul, zk or file")
	}
	b := Backend{Type: normType(scheme)}
	if b.Type == TypeFile {
		// Everything after file:// is the path: file:///var/lib/x.db is
		// absolute, file://x.db relative to the working directory.
		if rest == "" {
			return Backend{}, usageErr(spec, "no file path (file:///path/to/registry.db)")
		}
		b.Path = rest
		return b, nil
	}
	allowed, known := params[b.Type]
	if !known || b.Type == "static" || b.Type == "snapshot" || b.Type == "chain" {
		if !isScheme(scheme) {
			// Not a scheme: part of something else, perhaps a secret.
			return Backend{}, usageErr(spec, "want SCHEME://ADDRESS with scheme etcd, consul, zk or file")
		}
		return Backend{}, usageErr(spec, "unknown scheme %s: want etcd, consul, zk or file", registry.Quote(scheme))
	}
	authority, rawQuery, _ := strings.Cut(rest, "?")
	authority = strings.TrimSuffix(authority, "/")
	if strings.Contains(authority, "/") {
		return Backend{}, usageErr(spec, "unexpected path after the address: %s settings are parameters (?%s=...)",
			b.Type, strings.Join(allowed, "=...&"))
	}
	if strings.Contains(authority, "@") {
		return Backend{}, usageErr(spec, "credentials go in parameters (?username=...)")
	}
	if authority != "" {
		for h := range strings.SplitSeq(authority, ",") {
			if h = strings.TrimSpace(h); h == "" {
				return Backend{}, usageErr(spec, "empty address in the list")
			}
			b.Endpoints = append(b.Endpoints, h)
		}
	}
	if b.Type == TypeConsul && len(b.Endpoints) > 1 {
		return Backend{}, usageErr(spec, "consul takes one agent address, not %d", len(b.Endpoints))
	}
	q, err := query(spec, b.Type, rawQuery)
	if err != nil {
		return Backend{}, err
	}
	b.Name = q.Get("name")
	b.Namespace = q.Get("namespace")
	if b.Type == TypeZK {
		b.Namespace = q.Get("root")
		b.Username = q.Get("user")
	} else {
		b.Username = q.Get("username")
	}
	b.Password = q.Get("password")
	b.PasswordFile = q.Get("password_file")
	b.Token = q.Get("token")
	b.TokenFile = q.Get("token_file")
	b.Datacenter = q.Get("dc")
	if (q.Has("password") || q.Has("password_file")) && b.Username == "" {
		return Backend{}, usageErr(spec, "password without a user name")
	}
	scheme = q.Get("scheme")
	switch scheme {
	case "", "http":
	case "https":
		b.TLS.Enabled = true
	default:
		return Backend{}, usageErr(spec, "scheme=%s: want http or https", registry.Quote(scheme))
	}
	b.TLS.CAFile, b.TLS.CertFile, b.TLS.KeyFile = q.Get("ca"), q.Get("cert"), q.Get("key")
	b.TLS.ServerName = q.Get("server_name")
	p := paramParser{spec: spec, q: q}
	p.boolean("tls", &b.TLS.Enabled)
	p.boolean("insecure_skip_verify", &b.TLS.InsecureSkipVerify)
	if scheme == "http" && b.TLS.On() {
		return Backend{}, usageErr(spec, "scheme=http with TLS parameters: the connection would be https; drop one")
	}
	p.boolean("read_only", &b.ReadOnly)
	p.duration("ttl", &b.TTL)
	p.duration("timeout", &b.Timeout)
	return b, p.err
}

// query parses and checks the parameters of an element.
func query(spec, kind, raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		// Not the parser's message: it quotes the bad escape, which may be
		// part of a secret.
		return nil, usageErr(spec, "bad parameters: a '%%' not followed by two hex digits, or a ';' (parameters are separated by '&')")
	}
	allowed := params[kind]
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, k) {
			return nil, usageErr(spec, "unknown parameter %s for %s (want %s)", registry.Quote(k), kind, strings.Join(allowed, ", "))
		}
		if n := len(q[k]); n > 1 {
			return nil, usageErr(spec, "parameter %s given %d times", registry.Quote(k), n)
		}
	}
	return q, nil
}

// paramParser converts typed parameters, keeping the first error.
type paramParser struct {
	spec string
	q    url.Values
	err  error
}

func (p *paramParser) set(key string, conv func(string) error) {
	if p.err != nil || !p.q.Has(key) {
		return
	}
	if err := conv(p.q.Get(key)); err != nil {
		p.err = usageErr(p.spec, "%s=%s: %v", key, registry.Quote(p.q.Get(key)), err)
	}
}

func (p *paramParser) duration(key string, d *Duration) {
	p.set(key, func(v string) error { return d.UnmarshalText([]byte(v)) })
}

func (p *paramParser) boolean(key string, b *bool) {
	p.set(key, func(v string) error {
		x, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		*b = x
		return nil
	})
}

func (p *paramParser) integer(key string, n *int) {
	p.set(key, func(v string) error {
		x, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		*n = x
		return nil
	})
}

func (p *paramParser) float(key string, f *float64) {
	p.set(key, func(v string) error {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		*f = x
		return nil
	})
}

// Redact returns a compact-form string with its secrets masked, for
// messages: the value of every KEY=VALUE pair (after a '?' or a '&', in
// the address or alone: a forgotten '?' must not show a password) whose
// key is not one of the known parameters without a secret — password
// and token whatever their spelling (Password, pass%77ord), and misspelt
// or unknown ones — and any user info before an "@" in an address.
func Redact(spec string) string {
	parts := strings.Split(spec, "|")
	for i, el := range parts {
		var b strings.Builder
		for j := 0; ; j++ {
			k := strings.IndexAny(el, "?&")
			seg := el
			if k >= 0 {
				seg = el[:k]
			}
			scheme, rest, isURL := strings.Cut(seg, "://")
			switch key, _, isPair := strings.Cut(seg, "="); {
			case j == 0 && isURL && isScheme(scheme):
				if at := strings.LastIndexByte(rest, '@'); at >= 0 && !strings.EqualFold(scheme, "file") {
					seg = scheme + "://" + redact.Mask + rest[at:]
				}
				if eq := strings.IndexByte(seg, '='); eq >= 0 {
					// KEY=VALUE in the address: a parameter without its '?'.
					seg = seg[:eq+1] + redact.Mask
				}
			case isPair && !public(key):
				seg = key + "=" + redact.Mask
			}
			b.WriteString(seg)
			if k < 0 {
				break
			}
			b.WriteByte(el[k])
			el = el[k+1:]
		}
		parts[i] = b.String()
	}
	return strings.Join(parts, "|")
}

// public reports whether key, as written in a query, decodes to a known
// parameter without a secret value.
func public(key string) bool {
	k, err := url.QueryUnescape(key)
	return err == nil && publicParams[k]
}

// isScheme reports whether s has the syntax of a URL scheme.
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			continue
		}
		return false
	}
	return s != ""
}
