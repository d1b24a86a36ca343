package grpcresolver

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
)

// Scheme is the default target scheme: "regchain:///NAME".
const Scheme = "regchain"

// Option configures a Builder.
type Option func(*options)

type options struct {
	scheme     string
	endpoint   string
	emptyDelay time.Duration
	logger     *slog.Logger
	sc         *string            // nil: the default service config
	self       *locality.Locality // nil: the wrapper's Self, or unknown
}

// WithScheme sets the target scheme the Builder answers to. If empty or
// unset, "regchain".
func WithScheme(s string) Option { return func(o *options) { o.scheme = s } }

// WithEndpointScheme sets the scheme of the instance endpoints the resolver
// turns into addresses. If empty or unset, "grpc".
func WithEndpointScheme(s string) Option { return func(o *options) { o.endpoint = s } }

// WithEmptyDelay sets how long an Update without any usable address must
// stay the latest state before the empty list is pushed (see the package
// documentation). If zero or unset, it is pushed at once.
func WithEmptyDelay(d time.Duration) Option { return func(o *options) { o.emptyDelay = d } }

// WithLogger sets the logger for the resolver's debug messages and
// warnings (watch errors, instances without a usable endpoint). If nil or
// unset, slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithServiceConfig sets the service config (JSON) every state carries,
// instead of the default one (see "Balancing and retries" in the package
// documentation). An empty js makes the resolver send none, so that
// grpc.WithDefaultServiceConfig applies.
func WithServiceConfig(js string) Option { return func(o *options) { o.sc = &js } }

// WithLocality sets the client's place for the default service config's
// balancer. If unset, the Self of a locality.Registry given to NewBuilder;
// else the balancer reads REGCHAIN_ZONE and REGCHAIN_REGION.
func WithLocality(l locality.Locality) Option { return func(o *options) { o.self = &l } }

// Builder builds resolvers over one registry. It implements
// resolver.Builder; pass it to grpc.WithResolvers, or register it
// process-wide with resolver.Register.
//
// A Builder is safe for concurrent use.
type Builder struct {
	reg  registry.Registry
	opts options
	sc   serviceConfigs

	mu     sync.Mutex        // guards warned
	warned map[string]string // per service, the instances last warned about as left out
}

var _ resolver.Builder = (*Builder)(nil)

// NewBuilder returns a Builder over reg. The Builder never closes reg. A
// locality.Registry is read through its Unwrap (every level), its Self
// being the client's place.
func NewBuilder(reg registry.Registry, opts ...Option) *Builder {
	o := options{scheme: Scheme, endpoint: "grpc"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.scheme == "" {
		o.scheme = Scheme
	}
	if o.endpoint == "" {
		o.endpoint = "grpc"
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if lr, ok := reg.(locality.Registry); ok {
		reg = lr.Unwrap()
		if o.self == nil {
			self := lr.Self()
			o.self = &self
		}
	}
	b := &Builder{reg: reg, opts: o, warned: make(map[string]string)}
	b.sc = newServiceConfigs(o.sc, o.self)
	return b
}

// Scheme implements resolver.Builder.
func (b *Builder) Scheme() string { return b.opts.scheme }

// Build implements resolver.Builder: it starts watching the target's
// service. It fails only for a target without a valid service name or when
// the registry refuses the watch (closed).
func (b *Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	name := strings.TrimPrefix(target.Endpoint(), "/")
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("grpcresolver: target %q: %w", target.String(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := b.reg.Watch(ctx, name)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("grpcresolver: watch %q: %w", name, err)
	}
	r := newResolver(ctx, cancel, name, cc, w, b)
	r.start()
	return r, nil
}

// leftOut says at Warn, once per service and again only when the set
// changes, which instances have no usable endpoint and are left out.
func (b *Builder) leftOut(log *slog.Logger, service string, all, usable []*registry.Instance) {
	var ids []string
	if len(usable) < len(all) {
		keep := make(map[*registry.Instance]bool, len(usable))
		for _, in := range usable {
			keep[in] = true
		}
		for _, in := range all {
			if !keep[in] {
				ids = append(ids, in.ID)
			}
		}
		slices.Sort(ids)
		log.Debug("grpcresolver: instances without a usable endpoint left out",
			"skipped", len(ids), "scheme", b.opts.endpoint)
	}
	key := strings.Join(ids, "\x00")
	b.mu.Lock()
	prev, seen := b.warned[service]
	b.warned[service] = key
	b.mu.Unlock()
	if key == prev || (!seen && key == "") {
		return
	}
	if len(ids) == 0 {
		log.Info("grpcresolver: every instance has a usable endpoint again", "scheme", b.opts.endpoint)
		return
	}
	log.Warn("grpcresolver: instances without a "+b.opts.endpoint+":// endpoint are left out",
		"count", len(ids), "ids", ids[:min(len(ids), 5)], "of", len(all))
}
