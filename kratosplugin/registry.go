package kratosplugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-kratos/kratos/v2/log"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/registry"
)

var (
	_ kratosregistry.Registrar = (*Registry)(nil)
	_ kratosregistry.Discovery = (*Registry)(nil)
)

// watchWait bounds how long Watch waits for the underlying registry's Watch
// before returning a watcher that finishes connecting in the background. It
// is well under the 2 s Kratos' gRPC client gives watcher creation, so a
// registry that blocks in Watch never fails a dial.
const watchWait = 250 * time.Millisecond

// Option configures a Registry.
type Option func(o *options)

type options struct {
	logger log.Logger
}

// WithLogger sets the logger for the errors a watcher handles by itself
// (transient watch failures, retried Watch creation). If not set, Kratos'
// global logger (log.GetLogger) is used.
func WithLogger(logger log.Logger) Option {
	return func(o *options) { o.logger = logger }
}

// Registry is a Kratos registry.Registrar and registry.Discovery over a
// regchain registry.Registry: a single backend or a chain. Pass it to
// kratos.Registrar and to the transports' WithDiscovery options.
//
// Registry is safe for concurrent use. It does not own the underlying
// registry: closing that one is the caller's job, after the Kratos apps and
// clients using it have stopped.
type Registry struct {
	r      registry.Registry
	shared bool          // r is a registry.Deriver or a registry.SharedReader
	reads  registry.Memo // conversions, once per state
	log    *log.Helper
}

// New returns a Registry over r.
func New(r registry.Registry, opts ...Option) *Registry {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = log.GetLogger()
	}
	reg := &Registry{r: r, log: log.NewHelper(log.With(o.logger, "module", "regchain/kratosplugin"))}
	_, deriver := r.(registry.Deriver)
	_, shared := r.(registry.SharedReader)
	reg.shared = deriver || shared
	return reg
}

// Register registers the instance. ctx bounds the first write only: the
// underlying registry keeps the registration alive on its own context, so
// the 10 s context Kratos' App passes may end without affecting it.
func (r *Registry) Register(ctx context.Context, si *kratosregistry.ServiceInstance) error {
	if si == nil {
		return fmt.Errorf("kratosplugin: register: %w: nil instance", registry.ErrInvalid)
	}
	if err := r.r.Register(ctx, ToInstance(si)); err != nil {
		return fmt.Errorf("kratosplugin: register %s: %w", si, err)
	}
	return nil
}

// Deregister stops keeping the instance alive and removes it. Only Name and
// ID are used.
func (r *Registry) Deregister(ctx context.Context, si *kratosregistry.ServiceInstance) error {
	if si == nil {
		return fmt.Errorf("kratosplugin: deregister: %w: nil instance", registry.ErrInvalid)
	}
	if err := r.r.Deregister(ctx, ToInstance(si)); err != nil {
		return fmt.Errorf("kratosplugin: deregister %s: %w", si, err)
	}
	return nil
}

// GetService returns the service's instances. A service without
// instances (registry.ErrNotFound) gives an empty list and a nil error, as
// Kratos' contrib etcd registry does; any other failure is returned wrapped
// (errors.Is works on regchain's sentinels).
//
// Over a chain (a registry.Deriver) or another registry.SharedReader, a
// service the chain already watches is answered from memory and converted
// once per state (registry.Memo). The returned slice is the caller's, but the
// ServiceInstances in it are shared by every read of that state and must
// not be modified, as those of Kratos' contrib Consul registry, which
// returns its cached slice itself; Kratos only reads them. Their Endpoints
// are sorted when the order cannot change what Kratos picks (one endpoint
// per scheme), so that ServiceInstance.Equal, which sorts endpoint slices
// in place, writes nothing to them. An instance whose order matters (two
// endpoints of one scheme, of which Kratos takes the first) or has more
// than 12 endpoints keeps the registrant's order and is copied for each
// read. Over any other registry everything returned is the caller's.
func (r *Registry) GetService(ctx context.Context, name string) ([]*kratosregistry.ServiceInstance, error) {
	if !r.shared {
		ins, err := r.r.GetService(ctx, name)
		if err != nil {
			return getError(name, err)
		}
		return adopt(ins), nil
	}
	v, err := r.reads.Derive(ctx, r.r, name, deriveKey{}, deriveConverted)
	if err != nil {
		return getError(name, err)
	}
	return v.(*converted).instances(), nil
}

// deriveKey is the plugin's key for the backend's Derive: every Registry
// converts a state alike, so they share one value per state.
type deriveKey struct{}

func deriveConverted(ins []*registry.Instance) any { return convert(ins) }

// getError maps a failed read to what GetService returns.
func getError(name string, err error) ([]*kratosregistry.ServiceInstance, error) {
	if errors.Is(err, registry.ErrNotFound) {
		return []*kratosregistry.ServiceInstance{}, nil
	}
	return nil, fmt.Errorf("kratosplugin: get service %s: %w", registry.Quote(name), err)
}

// Watch returns a watcher of the service name. It returns within a fraction
// of a second even when every backend is unreachable or the underlying Watch
// blocks: the watcher then keeps trying to start the underlying watch in the
// background (with capped backoff), and its first Next waits for it. Only
// errors that retrying cannot fix are returned: an invalid name, a closed
// registry, a done ctx.
//
// The watcher lives until Stop or until ctx is done.
func (r *Registry) Watch(ctx context.Context, name string) (kratosregistry.Watcher, error) {
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("kratosplugin: watch: %w", err)
	}
	w := newWatcher(ctx, r.r, name, r.log)
	t := time.NewTimer(watchWait)
	defer t.Stop()
	select {
	case <-w.ready:
		if err := w.createErr(); err != nil {
			w.Stop()
			return nil, fmt.Errorf("kratosplugin: watch %s: %w", registry.Quote(name), err)
		}
	case <-t.C:
	}
	return w, nil
}
