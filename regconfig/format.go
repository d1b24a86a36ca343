package regconfig

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/regchain/regchain/internal/redact"
)

// String returns the backend in the compact form without its secrets
// (password, token), for messages and logs.
//
// Backend and Config also format without their secrets under every fmt
// verb (Format: %v and %s print String, %+v, %#v and the others the fields
// with the secrets masked) and in slog (LogValue: String).
func (b Backend) String() string {
	t := normType(b.Type)
	if t == TypeFile {
		return "file://" + b.Path
	}
	q := url.Values{}
	add := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	add("name", b.Name)
	if t == TypeZK {
		add("root", b.Namespace)
		add("user", b.Username)
	} else {
		add("namespace", b.Namespace)
		add("username", b.Username)
	}
	add("dc", b.Datacenter)
	add("password_file", b.PasswordFile)
	add("token_file", b.TokenFile)
	if b.TTL != 0 {
		add("ttl", b.TTL.D().String())
	}
	if b.Timeout != 0 {
		add("timeout", b.Timeout.D().String())
	}
	if b.TLS.Enabled {
		add("tls", "true")
	}
	add("ca", b.TLS.CAFile)
	add("cert", b.TLS.CertFile)
	add("key", b.TLS.KeyFile)
	add("server_name", b.TLS.ServerName)
	if b.TLS.InsecureSkipVerify {
		add("insecure_skip_verify", "true")
	}
	if b.ReadOnly {
		add("read_only", "true")
	}
	return withQuery(t+"://"+strings.Join(b.Endpoints, ","), q)
}

// String returns the config in the compact form without its secrets. The
// static tier's fixed instances have no compact form and are left out.
func (c Config) String() string {
	var parts []string
	for _, b := range c.Backends {
		parts = append(parts, b.String())
	}
	if c.Static.File != "" {
		q := url.Values{}
		if c.Static.PollInterval != 0 {
			q.Set("poll", c.Static.PollInterval.D().String())
		}
		parts = append(parts, withQuery("static://"+c.Static.File, q))
	}
	if c.Snapshot.Path != "" {
		q := url.Values{}
		if c.Snapshot.MaxAge != 0 {
			q.Set("max_age", c.Snapshot.MaxAge.D().String())
		}
		if c.Snapshot.FlushInterval != 0 {
			q.Set("flush", c.Snapshot.FlushInterval.D().String())
		}
		parts = append(parts, withQuery("snapshot://"+c.Snapshot.Path, q))
	}
	if q := c.Chain.query(); len(q) > 0 {
		parts = append(parts, "chain:?"+q.Encode())
	}
	return strings.Join(parts, "|")
}

func (ch ChainConfig) query() url.Values {
	q := url.Values{}
	set := func(k, v string, on bool) {
		if on {
			q.Set(k, v)
		}
	}
	set("name", ch.Name, ch.Name != "")
	set("read_policy", ch.ReadPolicy, ch.ReadPolicy != "")
	set("probe_interval", ch.ProbeInterval.D().String(), ch.ProbeInterval != 0)
	set("probe_timeout", ch.ProbeTimeout.D().String(), ch.ProbeTimeout != 0)
	set("call_timeout", ch.CallTimeout.D().String(), ch.CallTimeout != 0)
	set("failback_after", ch.FailbackAfter.D().String(), ch.FailbackAfter != 0)
	set("failure_threshold", strconv.Itoa(ch.FailureThreshold), ch.FailureThreshold != 0)
	set("strict_register", "true", ch.StrictRegister)
	set("guard", "false", ch.Guard.Disabled)
	set("guard_window", ch.Guard.Window.D().String(), ch.Guard.Window != 0)
	set("guard_confirmations", strconv.Itoa(ch.Guard.Confirmations), ch.Guard.Confirmations != 0)
	set("guard_max_drop_share", strconv.FormatFloat(ch.Guard.MaxDropShare, 'g', -1, 64), ch.Guard.MaxDropShare != 0)
	return q
}

func withQuery(s string, q url.Values) string {
	if len(q) == 0 {
		return s
	}
	// Keep '/' readable in paths such as namespace=/microservices.
	return s + "?" + strings.ReplaceAll(q.Encode(), "%2F", "/")
}

type (
	rawBackend Backend // without methods, for Format
	rawConfig  Config
)

// Format implements fmt.Formatter: %v and %s print String, %q quotes it;
// %+v, %#v and the other verbs print the fields with Password and Token
// masked.
func (b Backend) Format(f fmt.State, verb rune) { redact.FormatShort(f, verb, b.String(), b.masked()) }

// LogValue implements slog.LogValuer: String.
func (b Backend) LogValue() slog.Value { return slog.StringValue(b.String()) }

func (b Backend) masked() any {
	type Backend rawBackend
	m := Backend(b)
	m.Password, m.Token = redact.Secret(m.Password), redact.Secret(m.Token)
	return m
}

// Format implements fmt.Formatter: %v and %s print String, %q quotes it;
// %+v, %#v and the other verbs print the fields with the backends'
// secrets masked.
func (c Config) Format(f fmt.State, verb rune) {
	type Config rawConfig
	redact.FormatShort(f, verb, c.String(), Config(c))
}

// LogValue implements slog.LogValuer: String.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }
