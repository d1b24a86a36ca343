package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

// target is a parsed -registry value: the compact form of package
// regconfig, one backend URL or a whole chain.
type target struct {
	cfg regconfig.Config
}

// parseTarget parses a -registry value. Its errors are usage errors.
func parseTarget(raw string) (*target, error) {
	cfg, err := regconfig.Parse(raw)
	if err != nil {
		return nil, usageErr(err)
	}
	return &target{cfg: cfg}, nil
}

// usageErr turns a regconfig error into a usage error naming -registry.
func usageErr(err error) error {
	var se *regconfig.SyntaxError
	var fe *regconfig.FieldError
	switch {
	case errors.As(err, &se):
		return usagef("-registry %s: %s", registry.Quote(se.Element), se.Problem)
	case errors.As(err, &fe):
		return usagef("-registry: %s: %s", fe.Field, fe.Problem)
	}
	return usagef("-registry: %v", err)
}

// String returns the target without credentials, for messages.
func (t *target) String() string { return t.cfg.String() }

// connFlags are the connection flags that apply to every backend of
// -registry that does not set the same setting itself.
type connFlags struct {
	user         string
	passwordFile string
	token        string
	tokenFile    string
	tls          bool
	ca           string
	cert         string
	key          string
	serverName   string
}

// apply fills the backends' unset settings from the flags and the
// environment: -password-file, else $REGCTL_PASSWORD, is the password of a
// backend with a user name and no password, -token-file or -token, else
// $CONSUL_HTTP_TOKEN, Consul's token. File backends are opened read-only.
func (t *target) apply(f connFlags) error {
	for i := range t.cfg.Backends {
		b := &t.cfg.Backends[i]
		if b.Type == regconfig.TypeFile {
			b.ReadOnly = true
		}
		network := b.Type != regconfig.TypeFile
		if network && b.Type != regconfig.TypeConsul && b.Username == "" {
			b.Username = f.user
		}
		if b.Username != "" && b.Password == "" && b.PasswordFile == "" {
			b.PasswordFile = f.passwordFile
			b.PasswordEnv = "REGCTL_PASSWORD"
		}
		if b.Type == regconfig.TypeConsul && b.Token == "" && b.TokenFile == "" {
			b.Token, b.TokenFile = f.token, f.tokenFile
			b.TokenEnv = "CONSUL_HTTP_TOKEN"
		}
		if network {
			tl := &b.TLS
			tl.Enabled = tl.Enabled || f.tls
			tl.CAFile = or(tl.CAFile, f.ca)
			tl.CertFile = or(tl.CertFile, f.cert)
			tl.KeyFile = or(tl.KeyFile, f.key)
			tl.ServerName = or(tl.ServerName, f.serverName)
		}
	}
	if err := t.cfg.Validate(); err != nil {
		return usageErr(err)
	}
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// open connects to the target; timeout bounds each request of a backend
// that sets no timeout of its own. None of the network backends waits for
// its server here: an unreachable one shows in the first call.
func (t *target) open(timeout time.Duration, log *slog.Logger) (registry.Registry, error) {
	cfg := t.cfg
	cfg.Backends = append([]regconfig.Backend(nil), cfg.Backends...)
	for i := range cfg.Backends {
		if cfg.Backends[i].Timeout == 0 {
			cfg.Backends[i].Timeout = regconfig.Duration(timeout)
		}
	}
	return regconfig.Open(cfg, regconfig.WithLogger(log))
}
