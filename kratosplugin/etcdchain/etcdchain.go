package etcdchain

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/go-kratos/kratos/v2/log"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/kratosplugin"
)

// Option configures New, in the style of Kratos' contrib etcd registry
// options.
type Option func(*options)

type options struct {
	ctx       context.Context
	namespace string
	ttl       time.Duration
	maxRetry  int
	snapshot  string
	logger    log.Logger
	chain     []chain.Option
}

// Context ends the registry (as Close does) when ctx is done, like the
// contrib registry's Context option bounds its keepalives.
func Context(ctx context.Context) Option { return func(o *options) { o.ctx = ctx } }

// Namespace sets the key prefix. If unset, "/microservices", the contrib
// registry's default: both read each other's records.
func Namespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// RegisterTTL sets the lease TTL. If unset, 15s, the contrib default.
func RegisterTTL(ttl time.Duration) Option { return func(o *options) { o.ttl = ttl } }

// MaxRetry is accepted for source compatibility with the contrib registry
// and has no effect: where the contrib registry gives up re-registering
// after MaxRetry failed attempts, regchain keeps retrying (with capped
// backoff) until Deregister or Close, so an instance always comes back
// after a long etcd outage.
func MaxRetry(n int) Option { return func(o *options) { o.maxRetry = n } }

// Snapshot sets the chain's snapshot file: with it, discovery answers from
// the last known state when etcd is down, even right after a restart. If
// unset or "", no snapshot: the chain still serves what it saw in this
// process.
func Snapshot(path string) Option { return func(o *options) { o.snapshot = path } }

// Logger sets the Kratos logger of the registry, the chain and the etcd
// adapter (through kratosplugin.SlogHandler). If unset, log.GetLogger().
func Logger(l log.Logger) Option { return func(o *options) { o.logger = l } }

// ChainOptions adds options of the chain New builds.
func ChainOptions(opts ...chain.Option) Option {
	return func(o *options) { o.chain = append(o.chain, opts...) }
}

// Registry is what New returns: a kratosplugin.Registry (Kratos'
// Registrar and Discovery) over a chain it owns. Close it at shutdown,
// after the app.
type Registry struct {
	*kratosplugin.Registry
	// Chain is the chain, for Status and the operator switch.
	Chain *chain.Chain
	store *file.Store
	stop  func() bool
	once  sync.Once
	err   error
}

// New is the constructor Kratos users know from the contrib etcd
// registry, New(client, opts...): it returns a Kratos registry over a
// regchain chain of that etcd client (with the contrib layout, so contrib
// and regchain apps see each other) and, with Snapshot, a snapshot file.
// The client stays the caller's. It fails only when the snapshot file
// cannot be opened.
//
//	r, err := etcdchain.New(client, etcdchain.Snapshot("/var/lib/app/registry.snapshot"))
//	app := kratos.New(kratos.Registrar(r))
//	conn, err := grpc.DialInsecure(ctx, grpc.WithEndpoint("discovery:///greeter"), grpc.WithDiscovery(r))
func New(client *clientv3.Client, opts ...Option) (*Registry, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = log.GetLogger()
	}
	sl := slog.New(kratosplugin.SlogHandler(log.With(o.logger, "module", "regchain")))
	backend, err := etcd.New(etcd.Config{Client: client, Namespace: o.namespace, TTL: o.ttl, Logger: sl})
	if err != nil {
		return nil, err
	}
	copts := []chain.Option{chain.WithLogger(sl), chain.WithOwnTiers(true)}
	out := &Registry{}
	if o.snapshot != "" {
		st, err := file.OpenStore(o.snapshot, file.Config{Logger: sl})
		if err != nil {
			backend.Close()
			return nil, err
		}
		out.store = st
		copts = append(copts, chain.WithSnapshot(st))
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: backend}}, append(copts, o.chain...)...)
	if err != nil {
		backend.Close()
		if out.store != nil {
			out.store.Close()
		}
		return nil, err
	}
	out.Chain = c
	out.Registry = kratosplugin.New(c, kratosplugin.WithLogger(o.logger))
	if o.ctx != nil {
		out.stop = context.AfterFunc(o.ctx, func() { out.closeAll() })
	}
	return out, nil
}

// Close closes the chain, the adapter and the snapshot; the etcd client
// stays open. It is idempotent.
func (r *Registry) Close() error {
	if r.stop != nil {
		r.stop()
	}
	return r.closeAll()
}

func (r *Registry) closeAll() error {
	r.once.Do(func() {
		r.err = r.Chain.Close()
		if r.store != nil {
			r.err = errors.Join(r.err, r.store.Close())
		}
	})
	return r.err
}
