package microservice

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

type (
	localityKey struct{}
	ejectionKey struct{}
)

func withValue(key, value any) selector.Option {
	return func(o *selector.Options) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		o.Context = context.WithValue(o.Context, key, value)
	}
}

// WithLocality sets the client's place for NewSelector. An empty field is
// read from REGCHAIN_ZONE / REGCHAIN_REGION.
func WithLocality(l locality.Locality) selector.Option { return withValue(localityKey{}, l) }

// WithEjection sets NewSelector's outlier ejection; see package
// locality/nearest. Without it: 3 failures in a row or half of 10 or
// more calls within 1s, for 5s doubling up to 60s.
func WithEjection(e nearest.Ejection) selector.Option { return withValue(ejectionKey{}, e) }

// Selector is the go-micro selector NewSelector returns. It is safe for
// concurrent use.
type Selector struct {
	inner selector.Selector // go-micro's default: registry cache and filters
	rr    atomic.Uint64     // round robin among the nearest available nodes

	mu      sync.Mutex // guards the fields below
	self    locality.Locality
	tracker *nearest.Tracker
}

var _ selector.Selector = (*Selector)(nil)

// NewSelector returns a go-micro selector that sends calls to the nearest
// answering nodes (see the package doc). It takes go-micro's selector
// options (selector.Registry: the registry to read, else go-micro's
// default registry) and WithLocality and WithEjection.
func NewSelector(opts ...selector.Option) *Selector {
	s := &Selector{inner: selector.NewSelector(opts...)}
	s.apply(opts, true)
	return s
}

// apply takes the regchain options among opts; all applies the defaults
// of those absent.
func (s *Selector) apply(opts []selector.Option, all bool) {
	var o selector.Options
	for _, opt := range opts {
		opt(&o)
	}
	var (
		self, hasSelf = locality.Locality{}, false
		ej, hasEj     = nearest.Ejection{}, false
	)
	if o.Context != nil {
		self, hasSelf = o.Context.Value(localityKey{}).(locality.Locality)
		ej, hasEj = o.Context.Value(ejectionKey{}).(nearest.Ejection)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if hasSelf || all {
		s.self = self.OrEnv()
	}
	if hasEj || all {
		s.tracker = nearest.NewTracker(ej)
	}
}

// Init implements selector.Selector: go-micro's options go to the
// registry cache (a new registry rebuilds it), WithLocality and
// WithEjection to the rule (a new ejection setting starts a new history).
func (s *Selector) Init(opts ...selector.Option) error {
	s.apply(opts, false)
	return s.inner.Init(opts...)
}

// Options implements selector.Selector.
func (s *Selector) Options() selector.Options { return s.inner.Options() }

// String implements selector.Selector.
func (s *Selector) String() string { return "regchain-nearest" }

// Close implements selector.Selector: it stops the registry cache.
func (s *Selector) Close() error { return s.inner.Close() }

func (s *Selector) state() (locality.Locality, *nearest.Tracker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self, s.tracker
}

func key(service, address string) string { return service + "|" + address }

// Select implements selector.Selector. The returned Next gives, at each
// call, one of the nearest available nodes, in turn, never one it gave
// before while another is available (see the package doc).
func (s *Selector) Select(service string, opts ...selector.SelectOption) (selector.Next, error) {
	self, tr := s.state()
	strategy := func(services []*registry.Service) selector.Next {
		var nodes []candidate
		for _, svc := range services {
			for _, n := range svc.Nodes {
				if n == nil {
					continue
				}
				nodes = append(nodes, candidate{node: n, ep: tr.Endpoint(key(service, n.Address)), level: nearest.LevelOf(self, n.Metadata)})
			}
		}
		tried := &nearest.Tried{}
		return func() (*registry.Node, error) {
			_, cands := nearest.Pick(nodes, candidateAt, tried)
			if len(cands) == 0 {
				return nil, selector.ErrNoneAvailable
			}
			c := cands[s.rr.Add(1)%uint64(len(cands))]
			tried.Add(c.ep)
			return c.node, nil
		}
	}
	return s.inner.Select(service, append(opts, selector.WithStrategy(strategy))...)
}

type candidate struct {
	node  *registry.Node
	ep    *nearest.Endpoint
	level locality.Level
}

func candidateAt(c candidate) (locality.Level, *nearest.Endpoint) { return c.level, c.ep }

// Mark implements selector.Selector: go-micro's client reports each
// attempt's outcome, which CallFailed weighs.
func (s *Selector) Mark(service string, node *registry.Node, err error) {
	if node == nil {
		return
	}
	if failed, ok := CallFailed(err); ok {
		_, tr := s.state()
		tr.Endpoint(key(service, node.Address)).Report(failed)
	}
}

// Ejected returns the nodes ejected now, as "<service>|<address>", for
// status pages and tests.
func (s *Selector) Ejected() []string {
	_, tr := s.state()
	return tr.Ejected(time.Now())
}

// Reset implements selector.Selector: it forgets the outcomes of the
// service's nodes.
func (s *Selector) Reset(service string) {
	_, tr := s.state()
	tr.Forget(key(service, ""))
}
