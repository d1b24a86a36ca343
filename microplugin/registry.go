package microplugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/logger"
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// DefaultTimeout bounds each Register, Deregister, GetService and
// ListServices call when go-micro's Timeout option is zero.
const DefaultTimeout = 5 * time.Second

// Name is what String returns, and the name under which to put the plugin in
// go-micro's command-line registry table (see Factory).
const Name = "regchain"

// Registry is a go-micro registry.Registry over a regchain registry.Registry
// (one backend or a chain). Create it with New.
//
// Registry is safe for concurrent use. It does not own the backend: closing
// the backend is the caller's job, and ends the watchers.
type Registry struct {
	backend registry.Registry
	owned   Backend                        // NewOwning's backend, nil for New's
	shared  bool                           // backend is a registry.Deriver or a registry.SharedReader
	derive  func([]*registry.Instance) any // convert, reporting what it left out
	reads   registry.Memo                  // conversions, once per state
	readCtx readContexts                   // contexts of reads without GetContext
	timeout atomic.Int64                   // opts.Timeout, for the read path

	mu   sync.Mutex // guards opts
	opts mreg.Options
}

var _ mreg.Registry = (*Registry)(nil)

// New returns a go-micro registry serving r, configured by go-micro's
// registry options: micro.Registry(microplugin.New(chain)). It panics if r is
// nil. See the package documentation for the options it honours.
func New(r registry.Registry, opts ...mreg.Option) *Registry {
	if r == nil {
		panic("microplugin: New called with a nil registry")
	}
	p := newRegistry(r)
	_ = p.Init(opts...)
	return p
}

func newRegistry(r registry.Registry) *Registry {
	p := &Registry{backend: r, opts: *mreg.NewOptions()}
	_, deriver := r.(registry.Deriver)
	_, shared := r.(registry.SharedReader)
	p.shared = deriver || shared
	p.derive = func(ins []*registry.Instance) any { return p.convert(ins) }
	return p
}

// Factory returns a constructor in the shape of go-micro's command-line
// registry table, serving r with the options it is given. Nothing is
// registered at import time; a program that wants "--registry=regchain"
// adds it itself:
//
//	cmd.DefaultRegistries[microplugin.Name] = microplugin.Factory(chain)
func Factory(r registry.Registry) func(...mreg.Option) mreg.Registry {
	return func(opts ...mreg.Option) mreg.Registry { return New(r, opts...) }
}

// Init implements go-micro's registry.Registry: it applies opts on top of
// the current options. It may be called any number of times. Options that
// make no sense over a ready backend (Addrs, Secure, TLSConfig) are kept in
// Options but have no effect, and are logged as ignored.
func (p *Registry) Init(opts ...mreg.Option) error {
	var set mreg.Options // what this call sets, to warn once per call
	for _, o := range opts {
		o(&set)
	}
	p.mu.Lock()
	for _, o := range opts {
		o(&p.opts)
	}
	p.timeout.Store(int64(p.opts.Timeout))
	l := p.logger(p.opts)
	p.mu.Unlock()
	if p.owned != nil { // the options build the backend
		return p.owned.Configure(p.Options())
	}
	var ignored []string
	if len(set.Addrs) > 0 {
		ignored = append(ignored, fmt.Sprintf("Addrs %q", set.Addrs))
	}
	if set.Secure {
		ignored = append(ignored, "Secure")
	}
	if set.TLSConfig != nil {
		ignored = append(ignored, "TLSConfig")
	}
	if len(ignored) > 0 {
		l.Logf(logger.WarnLevel, "regchain: registry options %s ignored: the backend is configured where it is built", strings.Join(ignored, ", "))
	}
	return nil
}

// Options implements go-micro's registry.Registry. It returns a copy.
func (p *Registry) Options() mreg.Options {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.opts
	o.Addrs = slices.Clone(o.Addrs)
	return o
}

// String implements go-micro's registry.Registry: it returns Name.
func (p *Registry) String() string { return Name }

// Register implements go-micro's registry.Registry: it registers one
// instance per node (see ToInstances). RegisterTTL is ignored: the backend
// keeps registrations alive itself, with its own TTL. RegisterContext
// bounds the call, as does the Timeout option.
func (p *Registry) Register(svc *mreg.Service, opts ...mreg.RegisterOption) error {
	var o mreg.RegisterOptions
	for _, opt := range opts {
		opt(&o)
	}
	ins, err := ToInstances(svc)
	if err != nil {
		return err
	}
	ctx, cancel := p.callContext(o.Context)
	defer cancel()
	for _, in := range ins {
		if err := p.backend.Register(ctx, in); err != nil {
			return fmt.Errorf("regchain: register %s: %w", in, err)
		}
	}
	return nil
}

// Deregister implements go-micro's registry.Registry: it deregisters each
// node of svc. Only the service name and the node IDs are used, so the bare
// node go-micro's server sends on shutdown is enough. DeregisterContext
// bounds the call, as does the Timeout option.
func (p *Registry) Deregister(svc *mreg.Service, opts ...mreg.DeregisterOption) error {
	var o mreg.DeregisterOptions
	for _, opt := range opts {
		opt(&o)
	}
	if svc == nil {
		return fmt.Errorf("microplugin: %w: nil service", registry.ErrInvalid)
	}
	if len(svc.Nodes) == 0 {
		return fmt.Errorf("microplugin: %w: deregister service %s: no nodes", registry.ErrInvalid, registry.Quote(svc.Name))
	}
	ctx, cancel := p.callContext(o.Context)
	defer cancel()
	var errs []error
	for _, node := range svc.Nodes {
		if node == nil {
			continue
		}
		in := &registry.Instance{Name: svc.Name, ID: node.Id}
		if err := p.backend.Deregister(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("regchain: deregister %s: %w", in, err))
		}
	}
	return errors.Join(errs...)
}

// GetService implements go-micro's registry.Registry: one Service per
// version of name (see FromInstances). It returns go-micro's
// registry.ErrNotFound itself when the backend has no instance of name; for
// a name regchain cannot store, an error matching both that and
// registry.ErrInvalid. Other errors (registry.ErrUnavailable when every tier
// is down and nothing is known) are wrapped. Over a chain, a watched service
// is served from memory, converted once per state (see the package
// documentation, Reads): the Services, Nodes and Endpoints returned are the
// caller's, their Metadata maps and endpoint Values are shared and must not
// be modified, as with go-micro's registry/cache.
func (p *Registry) GetService(name string, opts ...mreg.GetOption) ([]*mreg.Service, error) {
	var parent context.Context
	if len(opts) > 0 {
		var o mreg.GetOptions
		for _, opt := range opts {
			opt(&o)
		}
		parent = o.Context
	}
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("regchain: %w: %w", mreg.ErrNotFound, err)
	}
	if !p.shared {
		ctx, cancel := p.callContext(parent)
		defer cancel()
		ins, err := p.backend.GetService(ctx, name)
		if err != nil {
			return nil, p.getError(name, err)
		}
		// Fresh instances: the conversion is the caller's copy.
		svcs, problems := fromInstances(ins, false)
		p.report(problems)
		if len(svcs) == 0 {
			return nil, mreg.ErrNotFound
		}
		return svcs, nil
	}
	d := time.Duration(p.timeout.Load())
	if d <= 0 {
		d = DefaultTimeout
	}
	var ctx context.Context
	if parent == nil {
		ctx = p.readCtx.get(d)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, d)
		defer cancel()
	}
	cv, err := p.converted(ctx, name)
	if err != nil {
		return nil, p.getError(name, err)
	}
	if len(cv.svcs) == 0 {
		return nil, mreg.ErrNotFound
	}
	return copyServices(cv), nil
}

// converted returns the conversion of name's current state, made once per
// state (registry.Memo: in the backend's state when it is a
// registry.Deriver, the chain).
func (p *Registry) converted(ctx context.Context, name string) (*converted, error) {
	v, err := p.reads.Derive(ctx, p.backend, name, deriveKey{}, p.derive)
	if err != nil {
		return nil, err
	}
	return v.(*converted), nil
}

// convert converts a state and reports what the conversion left out: the
// Deriver or the read cache runs it once per state.
func (p *Registry) convert(ins []*registry.Instance) *converted {
	cv := convert(ins)
	p.report(cv.problems)
	return cv
}

// deriveKey is the plugin's key for the backend's Derive: every Registry
// converts a state alike, so they share one value per state (and the one
// that converts it logs its problems).
type deriveKey struct{}

// getError maps a backend read error to what GetService returns.
func (p *Registry) getError(name string, err error) error {
	if errors.Is(err, registry.ErrNotFound) {
		return mreg.ErrNotFound
	}
	return fmt.Errorf("regchain: get service %s: %w", registry.Quote(name), err)
}

// ListServices implements go-micro's registry.Registry: one Service per
// name, with only the name set (as go-micro's own registries do), sorted.
func (p *Registry) ListServices(opts ...mreg.ListOption) ([]*mreg.Service, error) {
	var o mreg.ListOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := p.callContext(o.Context)
	defer cancel()
	names, err := p.backend.ListServices(ctx)
	if err != nil {
		return nil, fmt.Errorf("regchain: list services: %w", err)
	}
	out := make([]*mreg.Service, len(names))
	for i, n := range names {
		out[i] = &mreg.Service{Name: n}
	}
	return out, nil
}

// Watch implements go-micro's registry.Registry: it watches the service
// named by WatchService, or every service without it. WatchContext bounds
// the watcher's life. See Watcher for what Next returns.
func (p *Registry) Watch(opts ...mreg.WatchOption) (mreg.Watcher, error) {
	var o mreg.WatchOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	w, err := p.backend.Watch(ctx, o.Service)
	if err != nil {
		return nil, fmt.Errorf("regchain: watch %s: %w", registry.Quote(o.Service), err)
	}
	return &Watcher{w: w, service: o.Service, log: p.logger(p.Options())}, nil
}

// callContext returns the context of one call: parent (or Background)
// bounded by the Timeout option.
func (p *Registry) callContext(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	d := time.Duration(p.timeout.Load())
	if d <= 0 {
		d = DefaultTimeout
	}
	return context.WithTimeout(parent, d)
}

func (p *Registry) logger(o mreg.Options) logger.Logger {
	return logger.LoggerOrDefault(o.Logger)
}

// report logs what the mapping left out or dropped.
func (p *Registry) report(problems []error) {
	if len(problems) == 0 {
		return
	}
	l := p.logger(p.Options())
	for _, err := range problems {
		l.Logf(logger.WarnLevel, "regchain: %v", err)
	}
}
