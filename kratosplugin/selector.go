package kratosplugin

import (
	"context"
	"errors"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	"github.com/go-kratos/kratos/v2/selector"
	"github.com/go-kratos/kratos/v2/selector/node/direct"
	"github.com/go-kratos/kratos/v2/selector/wrr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

// SelectorConfig configures NewSelector. The zero value is usable.
type SelectorConfig struct {
	// Self is the client's place. An empty field is read from
	// REGCHAIN_ZONE / REGCHAIN_REGION once, by NewSelector.
	Self locality.Locality
	// Ejection sets when an instance whose calls fail is ejected and for
	// how long; see package locality/nearest. The zero value: after 3
	// failures in a row or half of 10 or more calls within 1s, for 5s
	// doubling up to 60s.
	Ejection nearest.Ejection
	// Balancer picks among the nearest available nodes. If nil, Kratos'
	// weighted round robin (selector/wrr), Kratos' own default, which
	// reads the "weight" metadata.
	Balancer selector.BalancerBuilder
	// Node builds the weighted nodes Balancer works on. If nil, Kratos'
	// direct nodes (selector/node/direct), which go with wrr; use
	// selector/node/ewma with selector/p2c.
	Node selector.WeightedNodeBuilder
}

// Selector is a Kratos selector.Builder that sends each call to the
// nearest answering instances; see the package doc ("Nearest answering
// instances") and NewSelector. It is safe for concurrent use.
type Selector struct {
	self    locality.Locality
	tracker *nearest.Tracker
	bal     selector.BalancerBuilder
	node    selector.WeightedNodeBuilder
}

var _ selector.Builder = (*Selector)(nil)

// NewSelector returns a Kratos selector builder applying package
// locality/nearest's rule. Make it the selector of every Kratos client of
// the process, before the clients are created:
//
//	selector.SetGlobalSelector(kratosplugin.NewSelector(kratosplugin.SelectorConfig{}))
func NewSelector(cfg SelectorConfig) *Selector {
	s := &Selector{self: cfg.Self.OrEnv(), tracker: nearest.NewTracker(cfg.Ejection), bal: cfg.Balancer, node: cfg.Node}
	if s.bal == nil {
		s.bal = &wrr.Builder{}
	}
	if s.node == nil {
		s.node = &direct.Builder{}
	}
	return s
}

// Build implements selector.Builder. Kratos builds a selector per client
// (HTTP) and per picker (gRPC, at every change of its ready connections);
// all of them share this Selector's record of outcomes.
func (s *Selector) Build() selector.Selector {
	return &selector.Default{
		NodeBuilder: &nodeBuilder{s: s},
		Balancer:    &balancer{inner: s.bal.Build()},
	}
}

// Ejected returns the instances ejected now, as
// "<service>|<scheme>://<address>", for status pages and tests.
func (s *Selector) Ejected() []string { return s.tracker.Ejected(time.Now()) }

// endpointKey names a node in the tracker.
func endpointKey(n selector.Node) string {
	return n.ServiceName() + "|" + n.Scheme() + "://" + n.Address()
}

type nodeBuilder struct{ s *Selector }

func (b *nodeBuilder) Build(n selector.Node) selector.WeightedNode {
	return &node{
		WeightedNode: b.s.node.Build(n),
		ep:           b.s.tracker.Endpoint(endpointKey(n)),
		level:        nearest.LevelOf(b.s.self, n.Metadata()),
	}
}

// node is a weighted node with its level and its tracked endpoint.
type node struct {
	selector.WeightedNode
	ep    *nearest.Endpoint
	level locality.Level
}

// Pick implements selector.WeightedNode: the done callback also reports
// the call's outcome to the endpoint.
func (n *node) Pick() selector.DoneFunc {
	done := n.WeightedNode.Pick()
	return func(ctx context.Context, di selector.DoneInfo) {
		if failed, ok := CallFailed(di.Err); ok {
			n.ep.Report(failed)
		}
		done(ctx, di)
	}
}

func nodeAt(wn selector.WeightedNode) (locality.Level, *nearest.Endpoint) {
	if n, ok := wn.(*node); ok {
		return n.level, n.ep
	}
	return locality.LevelAny, nil
}

// balancer narrows the candidates to the nearest available ones, then
// lets the inner balancer pick.
type balancer struct{ inner selector.Balancer }

func (b *balancer) Pick(ctx context.Context, nodes []selector.WeightedNode) (selector.WeightedNode, selector.DoneFunc, error) {
	tried := nearest.TriedFrom(ctx)
	_, cands := nearest.Pick(nodes, nodeAt, tried)
	if len(cands) == 0 {
		return nil, nil, selector.ErrNoAvailable
	}
	wn, done, err := b.inner.Pick(ctx, cands)
	if err != nil {
		return nil, nil, err
	}
	if n, ok := wn.(*node); ok {
		tried.Add(n.ep)
	}
	return wn, done, nil
}

// CallFailed tells how a finished call counts for the instance it went to
// (rule 7 of package locality/nearest): ok is false for a call that
// counts for nothing (the caller cancelled it), failed is true when the
// instance did not answer or answered with a gateway-class error:
//
//   - a Kratos error (HTTP client) with code 502, 503 or 504;
//   - a gRPC status UNAVAILABLE or DEADLINE_EXCEEDED;
//   - any other error that is neither (a refused, reset or broken
//     connection, a timeout).
//
// Any other Kratos error or gRPC status is the application's answer: a
// success.
func CallFailed(err error) (failed, ok bool) {
	if err == nil {
		return false, true
	}
	if errors.Is(err, context.Canceled) {
		return false, false
	}
	var ke *kerrors.Error
	if errors.As(err, &ke) {
		switch ke.Code {
		case 502, 503, 504:
			return true, true
		}
		return false, true
	}
	if st, isStatus := status.FromError(err); isStatus {
		switch st.Code() {
		case codes.Canceled:
			return false, false
		case codes.Unavailable, codes.DeadlineExceeded:
			return true, true
		}
		return false, true
	}
	return true, true
}
