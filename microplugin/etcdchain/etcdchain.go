package etcdchain

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"time"

	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/safefile"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/registry"
)

// NewRegistry returns a go-micro registry (a *microplugin.Registry) backed
// by a chain over etcd with a snapshot file, built from go-micro's registry
// options the way the go-micro etcd plugin builds its client:
//
//	reg := etcdchain.NewRegistry(registry.Addrs("10.0.0.1:2379"), registry.Timeout(3*time.Second))
//	svc := micro.NewService(micro.Registry(reg))
//	cmd.DefaultRegistries["regchain"] = etcdchain.NewRegistry // --registry=regchain
//
// Options:
//   - Addrs are the etcd endpoints ("host:port", port 2379 if missing);
//     if none, $MICRO_REGISTRY_ADDRESS, else 127.0.0.1:2379.
//   - Timeout bounds each etcd request and connection attempt, and each
//     call of the plugin. If zero, 5s.
//   - TLSConfig makes the connection use TLS with it. Secure alone makes it
//     use TLS with the system's roots (certificates are verified, unlike
//     the go-micro etcd plugin, which skips verification).
//   - Auth sets etcd's user and password; else $ETCD_USERNAME and
//     $ETCD_PASSWORD when both are set (as the plugin does).
//   - TTL sets the etcd lease TTL (default 15s). go-micro's per-call
//     RegisterTTL is not used: one lease TTL serves every registration,
//     kept alive by the backend until Deregister, so go-micro's periodic
//     re-registration is merely harmless.
//   - Records use the go-micro etcd plugin's layout (microplugin.EtcdCodec,
//     under /micro/registry), so a fleet on the plugin moves node by node;
//     Layout changes it.
//   - SnapshotPath sets the snapshot file; DefaultSnapshotPath is used when
//     unset. A snapshot file held by another process (bbolt locks it) or
//     damaged is skipped with a warning: the chain then runs without one.
//     A snapshot file another user could change (file.ErrUnsafe), and no
//     safe default (see DefaultSnapshotPath), are errors of every call:
//     set SnapshotPath.
//   - Logger (go-micro's) receives the backend's and the chain's logs
//     through microplugin.SlogHandler.
//
// The chain is built on first use, so that Init calls go-micro makes
// after NewRegistry (command-line flags) are taken into account; an Init
// that changes the connection options later builds a new chain, moves the
// registrations over and closes the old one (its watchers end with
// ErrClosed, and go-micro's cache watches again).
//
// Close ends it all: the chain, its etcd client, the snapshot. go-micro's
// registry interface has no Close, so a program does it with the
// service option microservice.CloseOnStop (closed when the service
// stops), or with microplugin.Close(reg) at shutdown; without either, the
// etcd client and the chain's goroutines live until the process ends, and
// the snapshot's last changes may not be saved.
func NewRegistry(opts ...mreg.Option) mreg.Registry {
	return microplugin.NewOwning(&owned{}, opts...)
}

// DefaultSnapshotPath returns the snapshot file NewRegistry uses when
// SnapshotPath is not given: <user cache dir>/regchain/micro-<program>.snapshot
// ($XDG_CACHE_HOME or ~/.cache on Linux), one per program name. It returns
// an error naming SnapshotPath when there is no user cache directory
// ($HOME and $XDG_CACHE_HOME unset) and when the cache directory could be
// changed by another user (owned by another user, or writable by group or
// others: a $HOME of /tmp): a snapshot is trusted when etcd is down, so a
// default never lands in a shared directory.
func DefaultSnapshotPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("etcdchain: %w: no default snapshot file: %w; set one with etcdchain.SnapshotPath (SnapshotPath(\"\") runs without one)", registry.ErrInvalid, err)
	}
	if err := safefile.CheckDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("etcdchain: %w: no default snapshot file: the user cache directory %w; set one with etcdchain.SnapshotPath (SnapshotPath(\"\") runs without one)", registry.ErrInvalid, err)
	}
	prog := "micro"
	if len(os.Args) > 0 && os.Args[0] != "" {
		prog = unsafeChars.ReplaceAllString(filepath.Base(os.Args[0]), "_")
	}
	return filepath.Join(dir, "regchain", "micro-"+prog+".snapshot"), nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

type (
	authKey     struct{}
	ttlKey      struct{}
	snapshotKey struct{}
	layoutKey   struct{}
)

type authCreds struct{ user, password string }

func withValue(key, value any) mreg.Option {
	return func(o *mreg.Options) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		o.Context = context.WithValue(o.Context, key, value)
	}
}

// Auth sets etcd's user name and password for NewRegistry.
func Auth(user, password string) mreg.Option { return withValue(authKey{}, authCreds{user, password}) }

// TTL sets the etcd lease TTL of NewRegistry's registrations.
func TTL(d time.Duration) mreg.Option { return withValue(ttlKey{}, d) }

// SnapshotPath sets NewRegistry's snapshot file; "" runs without one.
func SnapshotPath(path string) mreg.Option { return withValue(snapshotKey{}, path) }

// Layout sets NewRegistry's record layout. If unset,
// microplugin.EtcdCodec (the go-micro etcd plugin's); etcd.KratosCodec
// shares Kratos apps' records instead.
func Layout(c etcd.Codec) mreg.Option { return withValue(layoutKey{}, c) }

// settings are what NewRegistry's chain is built from.
type settings struct {
	endpoints []string
	timeout   time.Duration
	tls       *tls.Config
	user      string
	password  string
	ttl       time.Duration
	snapshot  string
	noDefault error // why there is no default snapshot file, when snapshot is ""
	codec     etcd.Codec
}

func (s settings) equal(o settings) bool {
	return slices.Equal(s.endpoints, o.endpoints) && s.timeout == o.timeout && s.tls == o.tls &&
		s.user == o.user && s.password == o.password && s.ttl == o.ttl && s.snapshot == o.snapshot && sameCodec(s.codec, o.codec) &&
		(s.noDefault == nil) == (o.noDefault == nil)
}

// sameCodec compares two codecs without panicking on a type that is not
// comparable (such a codec counts as changed: Init rebuilds the chain).
func sameCodec(a, b etcd.Codec) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	if a != nil && !reflect.TypeOf(a).Comparable() {
		return false
	}
	return a == b
}

func settingsOf(o mreg.Options) settings {
	s := settings{timeout: o.Timeout, codec: microplugin.EtcdCodec{}}
	s.snapshot, s.noDefault = DefaultSnapshotPath()
	for _, a := range o.Addrs {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, "2379")
		}
		s.endpoints = append(s.endpoints, a)
	}
	if len(s.endpoints) == 0 {
		if a := os.Getenv("MICRO_REGISTRY_ADDRESS"); a != "" {
			s.endpoints = []string{a}
		}
	}
	if o.TLSConfig != nil {
		s.tls = o.TLSConfig
	} else if o.Secure {
		s.tls = secureDefault
	}
	if u, p := os.Getenv("ETCD_USERNAME"), os.Getenv("ETCD_PASSWORD"); u != "" && p != "" {
		s.user, s.password = u, p
	}
	if ctx := o.Context; ctx != nil {
		if a, ok := ctx.Value(authKey{}).(authCreds); ok {
			s.user, s.password = a.user, a.password
		}
		if d, ok := ctx.Value(ttlKey{}).(time.Duration); ok {
			s.ttl = d
		}
		if p, ok := ctx.Value(snapshotKey{}).(string); ok {
			s.snapshot, s.noDefault = p, nil
		}
		if c, ok := ctx.Value(layoutKey{}).(etcd.Codec); ok {
			s.codec = c
		}
	}
	return s
}

// secureDefault is the TLS configuration of Secure without TLSConfig: the
// system's roots. One value, so that settings compare equal across Inits.
var secureDefault = &tls.Config{MinVersion: tls.VersionTLS12}

// owned is the registry.Registry behind NewRegistry: a chain built from
// the go-micro options on first use, rebuilt when they change.
type owned struct {
	mu     sync.Mutex // guards the fields below
	opts   mreg.Options
	set    settings
	cur    *built
	closed bool
}

type built struct {
	chain *chain.Chain
	store *file.Store // nil without a snapshot
}

func (b *built) close() error {
	err := b.chain.Close()
	if b.store != nil {
		err = errors.Join(err, b.store.Close())
	}
	return err
}

func (o *owned) log(opts mreg.Options) *slog.Logger {
	return slog.New(microplugin.SlogHandler(opts.Logger))
}

// Configure implements microplugin.Backend: it takes the plugin's current
// options (Init). A change of the connection settings after the chain was
// built rebuilds it.
func (o *owned) Configure(opts mreg.Options) error {
	s := settingsOf(opts)
	o.mu.Lock()
	o.opts = opts
	if o.cur == nil || o.closed || s.equal(o.set) {
		o.set = s
		o.mu.Unlock()
		return nil
	}
	old := o.cur
	nb, err := build(s, opts, o.log(opts))
	if err != nil {
		o.mu.Unlock()
		return err
	}
	o.set, o.cur = s, nb
	o.mu.Unlock()
	o.log(opts).Info("regchain: registry options changed: chain rebuilt")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, rs := range old.chain.Registrations() {
		nb.chain.Register(ctx, rs.Instance) // pending and retried when etcd is down
	}
	return old.close()
}

// get returns the chain, building it on first use.
func (o *owned) get(op string) (registry.Registry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, fmt.Errorf("etcdchain: %s: %w", op, registry.ErrClosed)
	}
	if o.cur == nil {
		b, err := build(o.set, o.opts, o.log(o.opts))
		if err != nil {
			return nil, err
		}
		o.cur = b
	}
	return o.cur.chain, nil
}

func build(s settings, opts mreg.Options, log *slog.Logger) (*built, error) {
	if s.noDefault != nil {
		return nil, s.noDefault
	}
	r, err := etcd.New(etcd.Config{
		Endpoints:   s.endpoints,
		Timeout:     s.timeout,
		DialTimeout: s.timeout,
		TLS:         s.tls,
		Username:    s.user,
		Password:    s.password,
		TTL:         s.ttl,
		Codec:       s.codec,
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("etcdchain: %w", err)
	}
	b := &built{}
	copts := []chain.Option{chain.WithName("micro"), chain.WithLogger(log), chain.WithOwnTiers(true)}
	if s.snapshot != "" {
		if err := os.MkdirAll(filepath.Dir(s.snapshot), 0o700); err != nil {
			log.Warn("regchain: no snapshot: cannot create its directory", "path", s.snapshot, "error", err)
		} else if st, err := file.OpenStore(s.snapshot, file.Config{Logger: log}); errors.Is(err, file.ErrUnsafe) {
			r.Close()
			return nil, fmt.Errorf("etcdchain: snapshot: %w; fix the file's place or choose another with etcdchain.SnapshotPath", err)
		} else if err != nil {
			log.Warn("regchain: no snapshot: cannot open it", "path", s.snapshot, "error", err)
		} else {
			b.store = st
			copts = append(copts, chain.WithSnapshot(st))
		}
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: r}}, copts...)
	if err != nil {
		r.Close()
		if b.store != nil {
			b.store.Close()
		}
		return nil, fmt.Errorf("etcdchain: %w", err)
	}
	b.chain = c
	return b, nil
}

func (o *owned) Register(ctx context.Context, in *registry.Instance) error {
	r, err := o.get("register")
	if err != nil {
		return err
	}
	return r.Register(ctx, in)
}

func (o *owned) Deregister(ctx context.Context, in *registry.Instance) error {
	r, err := o.get("deregister")
	if err != nil {
		return err
	}
	return r.Deregister(ctx, in)
}

func (o *owned) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	r, err := o.get("get")
	if err != nil {
		return nil, err
	}
	return r.GetService(ctx, name)
}

func (o *owned) GetServiceShared(ctx context.Context, name string) ([]*registry.Instance, error) {
	r, err := o.get("get")
	if err != nil {
		return nil, err
	}
	return registry.GetServiceShared(ctx, r, name)
}

func (o *owned) Derive(ctx context.Context, name string, key any, derive func([]*registry.Instance) any) (any, error) {
	r, err := o.get("get")
	if err != nil {
		return nil, err
	}
	return registry.Derive(ctx, r, name, key, derive)
}

func (o *owned) ListServices(ctx context.Context) ([]string, error) {
	r, err := o.get("list")
	if err != nil {
		return nil, err
	}
	return r.ListServices(ctx)
}

func (o *owned) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	r, err := o.get("watch")
	if err != nil {
		return nil, err
	}
	return r.Watch(ctx, name)
}

// Close closes the chain, the etcd client and the snapshot.
func (o *owned) Close() error {
	o.mu.Lock()
	cur := o.cur
	o.cur, o.closed = nil, true
	o.mu.Unlock()
	if cur == nil {
		return nil
	}
	return cur.close()
}

// Chain returns the chain NewRegistry built reg on (building it if
// needed), for Status and the operator switch; nil for any other registry,
// or after Close.
func Chain(reg mreg.Registry) *chain.Chain {
	p, ok := reg.(*microplugin.Registry)
	if !ok {
		return nil
	}
	o, ok := p.Unwrap().(*owned)
	if !ok {
		return nil
	}
	r, err := o.get("chain")
	if err != nil {
		return nil
	}
	return r.(*chain.Chain)
}
