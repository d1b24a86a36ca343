package main

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/registry"
)

// target is a parsed -registry URL.
type target struct {
	scheme string     // "etcd", "consul", "zk" or "file"
	hosts  []string   // host:port list; empty for the backend's default
	query  url.Values // backend parameters
	path   string     // file only
}

// params lists the query parameters each scheme accepts.
var params = map[string][]string{
	"etcd":   {"namespace", "password", "username"},
	"consul": {"dc", "scheme", "token"},
	"zk":     {"password", "root", "user"},
}

// parseTarget parses a -registry URL. Its errors are usage errors.
func parseTarget(raw string) (*target, error) {
	spec := redact(raw) // for messages
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return nil, usagef("-registry %q: want SCHEME://ADDRESS with scheme etcd, consul, zk or file", spec)
	}
	t := &target{scheme: strings.ToLower(scheme)}
	if t.scheme == "zookeeper" {
		t.scheme = "zk"
	}
	if t.scheme == "file" {
		// Everything after file:// is the path: file:///var/lib/x.db is
		// absolute, file://x.db relative to the working directory.
		if rest == "" {
			return nil, usagef("-registry %q: no file path (file:///path/to/registry.db)", spec)
		}
		t.path = rest
		return t, nil
	}
	allowed, known := params[t.scheme]
	if !known {
		return nil, usagef("-registry %q: unknown scheme %q: want etcd, consul, zk or file", spec, scheme)
	}
	authority, rawQuery, _ := strings.Cut(rest, "?")
	authority = strings.TrimSuffix(authority, "/")
	if strings.Contains(authority, "/") {
		return nil, usagef("-registry %q: unexpected path after the address: %s settings are parameters (?%s=...)",
			spec, t.scheme, strings.Join(allowed, "=...&"))
	}
	if strings.Contains(authority, "@") {
		return nil, usagef("-registry %q: credentials go in parameters (?username=...), or the password in $REGCTL_PASSWORD", spec)
	}
	if authority != "" {
		for _, h := range strings.Split(authority, ",") {
			if h = strings.TrimSpace(h); h == "" {
				return nil, usagef("-registry %q: empty address in the list", spec)
			}
			t.hosts = append(t.hosts, h)
		}
	}
	if t.scheme == "consul" && len(t.hosts) > 1 {
		return nil, usagef("-registry %q: consul takes one agent address, not %d", spec, len(t.hosts))
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, usagef("-registry %q: bad parameters: %v", spec, err)
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, k) {
			return nil, usagef("-registry %q: unknown parameter %q for %s (want %s)", spec, k, t.scheme, strings.Join(allowed, ", "))
		}
		if n := len(q[k]); n > 1 {
			return nil, usagef("-registry %q: parameter %q given %d times", spec, k, n)
		}
	}
	if q.Has("password") && !q.Has("username") && !q.Has("user") {
		return nil, usagef("-registry %q: password without a user name", spec)
	}
	if s := q.Get("scheme"); s != "" && s != "http" && s != "https" {
		return nil, usagef("-registry %q: scheme=%q: want http or https", spec, s)
	}
	t.query = q
	return t, nil
}

// redact returns the -registry URL spec with the values of its password
// and token parameters, and any user info before an "@", masked.
func redact(spec string) string {
	const mask = "REDACTED"
	base, query, hasQuery := strings.Cut(spec, "?")
	if scheme, rest, ok := strings.Cut(base, "://"); ok && scheme != "file" {
		if i := strings.LastIndexByte(rest, '@'); i >= 0 {
			base = scheme + "://" + mask + rest[i:]
		}
	}
	if !hasQuery {
		return base
	}
	pairs := strings.Split(query, "&")
	for i, p := range pairs {
		if k, _, ok := strings.Cut(p, "="); ok && (k == "password" || k == "token") {
			pairs[i] = k + "=" + mask
		}
	}
	return base + "?" + strings.Join(pairs, "&")
}

// String returns the target without credentials, for messages.
func (t *target) String() string {
	if t.scheme == "file" {
		return "file://" + t.path
	}
	s := t.scheme + "://" + strings.Join(t.hosts, ",")
	sep := "?"
	for _, k := range slices.Sorted(maps.Keys(t.query)) {
		if k == "password" || k == "token" {
			continue
		}
		s += sep + k + "=" + t.query.Get(k)
		sep = "&"
	}
	return s
}

// password returns the password parameter, else $REGCTL_PASSWORD.
func (t *target) password() string {
	if p := t.query.Get("password"); p != "" {
		return p
	}
	return os.Getenv("REGCTL_PASSWORD")
}

// open connects to the target. None of the network backends waits for its
// server here: an unreachable one shows in the first call, within timeout.
func (t *target) open(timeout time.Duration, log *slog.Logger) (registry.Registry, error) {
	switch t.scheme {
	case "etcd":
		cfg := etcd.Config{
			Endpoints:   t.hosts,
			Namespace:   t.query.Get("namespace"),
			Username:    t.query.Get("username"),
			Timeout:     timeout,
			DialTimeout: timeout,
			Logger:      log,
		}
		if cfg.Username != "" {
			cfg.Password = t.password()
		}
		return etcd.New(cfg)
	case "consul":
		cfg := consul.Config{
			Scheme:         t.query.Get("scheme"),
			Token:          t.query.Get("token"),
			Datacenter:     t.query.Get("dc"),
			RequestTimeout: timeout,
			Logger:         log,
		}
		if len(t.hosts) == 1 {
			cfg.Address = t.hosts[0]
		}
		if cfg.Token == "" {
			cfg.Token = os.Getenv("CONSUL_HTTP_TOKEN")
		}
		return consul.New(cfg)
	case "zk":
		cfg := zk.Config{
			Servers:        t.hosts,
			Root:           t.query.Get("root"),
			User:           t.query.Get("user"),
			RequestTimeout: timeout,
			Logger:         log,
		}
		if cfg.User != "" {
			cfg.Password = t.password()
		}
		return zk.New(cfg)
	case "file":
		return file.Open(t.path, file.Config{ReadOnly: true, Timeout: timeout, Logger: log})
	}
	return nil, fmt.Errorf("unknown scheme %q", t.scheme) // parseTarget lets none through
}
