package grpcresolver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/resolver"

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

// Builder builds resolvers over one registry. It implements
// resolver.Builder; pass it to grpc.WithResolvers, or register it
// process-wide with resolver.Register.
//
// A Builder is safe for concurrent use.
type Builder struct {
	reg  registry.Registry
	opts options
}

var _ resolver.Builder = (*Builder)(nil)

// NewBuilder returns a Builder over reg. The Builder never closes reg.
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
	return &Builder{reg: reg, opts: o}
}

// Scheme implements resolver.Builder.
func (b *Builder) Scheme() string { return b.opts.scheme }

// Build implements resolver.Builder: it starts watching the target's
// service. It fails only for a target without a valid service name or when
// the registry refuses the watch (closed).
func (b *Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	name := strings.TrimPrefix(target.Endpoint(), "/")
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("grpcresolver: target %s: %w", registry.Quote(target.String()), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := b.reg.Watch(ctx, name)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("grpcresolver: watch %s: %w", registry.Quote(name), err)
	}
	r := newResolver(ctx, cancel, name, cc, w, &b.opts)
	r.start()
	return r, nil
}
