package regconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/adapters/static"
	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/safefile"
	"github.com/regchain/regchain/registry"
)

// Option configures Open and OpenBackend.
type Option func(*openOptions)

type openOptions struct {
	logger *slog.Logger
	chain  []chain.Option
}

// WithLogger sets the logger handed to every backend and the chain. If nil
// or unset, slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *openOptions) { o.logger = l } }

// WithChainOptions adds chain options, applied after those of the config
// (so they win).
func WithChainOptions(opts ...chain.Option) Option {
	return func(o *openOptions) { o.chain = append(o.chain, opts...) }
}

func newOpenOptions(opts []Option) openOptions {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}

// Chain is what Open returns for a chain: the chain, whose Close also
// closes the tiers and the snapshot store Open opened. It is safe for
// concurrent use.
type Chain struct {
	*chain.Chain
	store io.Closer // nil without a snapshot
}

// Close closes the chain, its tiers and its snapshot store.
func (c *Chain) Close() error {
	err := c.Chain.Close()
	if c.store != nil {
		err = errors.Join(err, c.store.Close())
	}
	return err
}

// Open validates c and opens what it describes: the backend itself when c
// is exactly one backend with no snapshot, no static tier and no chain
// options (and, but for a file, not read-only); else a *Chain, where a
// read-only backend is a read-only tier. Nothing waits for a server: a backend that is
// down shows in the first calls (and the chain goes on to the next tier).
func Open(c Config, opts ...Option) (registry.Registry, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	o := newOpenOptions(opts)
	if len(c.Backends) == 1 && !c.Static.On() && c.Snapshot.Path == "" && c.Chain == (ChainConfig{}) && len(o.chain) == 0 &&
		(!c.Backends[0].ReadOnly || normType(c.Backends[0].Type) == TypeFile) {
		return openBackend(c.Backends[0], "backends[0]", o)
	}
	var tiers []chain.Tier
	closeAll := func() {
		for _, t := range tiers {
			t.Registry.Close()
		}
	}
	for i, b := range c.Backends {
		r, err := openBackend(b, fmt.Sprintf("backends[%d]", i), o)
		if err != nil {
			closeAll()
			return nil, err
		}
		tiers = append(tiers, chain.Tier{Name: c.tierName(i), Registry: r, ReadOnly: b.ReadOnly})
	}
	if c.Static.On() {
		st, err := static.New(static.Config{
			Instances:    c.Static.Instances,
			File:         c.Static.File,
			PollInterval: c.Static.PollInterval.D(),
			Logger:       o.logger,
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("regconfig: static: %w", err)
		}
		tiers = append(tiers, chain.Tier{Name: static.Source, Registry: st, ReadOnly: true})
	}
	copts := c.Chain.options(o.logger)
	out := &Chain{}
	if c.Snapshot.Path != "" {
		store, err := file.OpenStore(c.Snapshot.Path, file.Config{Logger: o.logger})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("regconfig: snapshot.path: %w", err)
		}
		out.store = store
		copts = append(copts, chain.WithSnapshot(store),
			chain.WithSnapshotMaxAge(c.Snapshot.MaxAge.D()), chain.WithFlushInterval(c.Snapshot.FlushInterval.D()))
	}
	copts = append(copts, chain.WithOwnTiers(true))
	copts = append(copts, o.chain...)
	ch, err := chain.New(tiers, copts...)
	if err != nil {
		closeAll()
		if out.store != nil {
			out.store.Close()
		}
		return nil, fmt.Errorf("regconfig: %w", err)
	}
	out.Chain = ch
	return out, nil
}

func (ch ChainConfig) options(log *slog.Logger) []chain.Option {
	opts := []chain.Option{chain.WithLogger(log)}
	if ch.Name != "" {
		opts = append(opts, chain.WithName(ch.Name))
	}
	if ch.ReadPolicy == "merge" {
		opts = append(opts, chain.WithReadPolicy(chain.Merge))
	}
	return append(opts,
		chain.WithProbeInterval(ch.ProbeInterval.D()),
		chain.WithProbeTimeout(ch.ProbeTimeout.D()),
		chain.WithCallTimeout(ch.CallTimeout.D()),
		chain.WithFailureThreshold(ch.FailureThreshold),
		chain.WithFailbackAfter(ch.FailbackAfter.D()),
		chain.WithStrictRegister(ch.StrictRegister),
		chain.WithGuard(chain.Guard{
			Disabled: ch.Guard.Disabled, MaxDropShare: ch.Guard.MaxDropShare,
			Window: ch.Guard.Window.D(), Confirmations: ch.Guard.Confirmations,
		}),
	)
}

// OpenBackend validates b and opens it alone.
func OpenBackend(b Backend, opts ...Option) (registry.Registry, error) {
	if err := b.validate("backend"); err != nil {
		return nil, err
	}
	return openBackend(b, "backend", newOpenOptions(opts))
}

func openBackend(b Backend, path string, o openOptions) (registry.Registry, error) {
	tlsCfg, err := b.TLS.load(path + ".tls")
	if err != nil {
		return nil, err
	}
	password, err := secret(b.Password, b.PasswordFile, b.PasswordEnv, path+".password_file")
	if err != nil {
		return nil, err
	}
	token, err := secret(b.Token, b.TokenFile, b.TokenEnv, path+".token_file")
	if err != nil {
		return nil, err
	}
	var r registry.Registry
	switch normType(b.Type) {
	case TypeEtcd:
		r, err = etcd.New(etcd.Config{
			Endpoints:   b.Endpoints,
			Namespace:   b.Namespace,
			Username:    b.Username,
			Password:    password,
			TLS:         tlsCfg,
			TTL:         b.TTL.D(),
			Timeout:     b.Timeout.D(),
			DialTimeout: b.Timeout.D(),
			Logger:      o.logger,
		})
	case TypeConsul:
		cfg := consul.Config{
			Token:      token,
			TLS:        tlsCfg,
			Datacenter: b.Datacenter,
			TTL:        b.TTL.D(),
			Timeout:    b.Timeout.D(),
			Logger:     o.logger,
		}
		if len(b.Endpoints) == 1 {
			cfg.Address = b.Endpoints[0]
		}
		if b.TLS.On() {
			cfg.Scheme = "https"
		}
		r, err = consul.New(cfg)
	case TypeZK:
		r, err = zk.New(zk.Config{
			Servers:        b.Endpoints,
			Namespace:      b.Namespace,
			Username:       b.Username,
			Password:       password,
			TLS:            tlsCfg,
			SessionTimeout: b.TTL.D(),
			Timeout:        b.Timeout.D(),
			Logger:         o.logger,
		})
	case TypeFile:
		r, err = file.Open(b.Path, file.Config{ReadOnly: b.ReadOnly, Timeout: b.Timeout.D(), Logger: o.logger})
	}
	if err != nil {
		return nil, fmt.Errorf("regconfig: %s (%s): %w", path, b, err)
	}
	return r, nil
}

// Limits of the files Open reads: a PEM bundle (the system's holds some
// 200 KB), a secret.
const (
	maxPEMFile    = 4 << 20
	maxSecretFile = 64 << 10
)

// secret returns value, else the content of file (a trailing newline
// dropped), else the environment variable env. field names the file in
// errors.
func secret(value, file, env, field string) (string, error) {
	switch {
	case value != "":
		return value, nil
	case file != "":
		b, err := safefile.ReadFile(file, maxSecretFile)
		if err != nil {
			return "", fieldErr(field, "%v", err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", fieldErr(field, "%s is empty", file)
		}
		return s, nil
	case env != "":
		return os.Getenv(env), nil
	}
	return "", nil
}

// load builds the TLS configuration; nil when TLS is off.
func (t TLS) load(path string) (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := safefile.ReadFile(t.CAFile, maxPEMFile)
		if err != nil {
			return nil, fieldErr(path+".ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fieldErr(path+".ca_file", "%s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		certPEM, err := safefile.ReadFile(t.CertFile, maxPEMFile)
		if err != nil {
			return nil, fieldErr(path+".cert_file", "%v", err)
		}
		keyPEM, err := safefile.ReadFile(t.KeyFile, maxPEMFile)
		if err != nil {
			return nil, fieldErr(path+".key_file", "%v", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fieldErr(path+".cert_file", "%s and %s: %v", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
