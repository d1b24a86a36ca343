package grpcbalancer

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst/pickfirstleaf"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

// Name is the policy's name in service configs.
const Name = "regchain_locality"

func init() { balancer.Register(builder{}) }

type builder struct{}

func (builder) Name() string { return Name }

func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &lb{
		ClientConn: cc,
		target:     opts.Target.String(),
		eps:        resolver.NewEndpointMap(),
		level:      -1,
	}
	b.child = endpointsharding.NewBalancer(b, opts, balancer.Get(pickfirstleaf.Name).Build, endpointsharding.Options{})
	return b
}

// lb is one channel's policy. It sits between grpc-go and an
// endpointsharding balancer of pick_first children (one per endpoint):
// endpointsharding reports every child's state through UpdateState, which
// lb intercepts to build its own picker. Ejection is package
// locality/nearest's: a Tracker per channel keeps each endpoint's
// outcomes, and every pick applies nearest.Pick, so an ejection or a
// re-admission needs no new picker.
//
// grpc-go serializes the calls into a balancer (UpdateClientConnState,
// ResolverError, Close and the children's state updates); mu guards lb's
// fields against the String method and keeps pickers in order.
type lb struct {
	balancer.ClientConn // the channel; UpdateState is intercepted
	child               balancer.Balancer
	target              string

	mu       sync.Mutex // guards the fields below; held while sending a picker
	closed   bool
	cfg      *parsed
	tracker  *nearest.Tracker
	eps      *resolver.EndpointMap // resolver.Endpoint -> *endpoint
	children []endpointsharding.ChildState
	agg      balancer.State // endpointsharding's own state and picker
	level    locality.Level // of the last READY picker; -1: none yet
	started  bool           // a READY picker was sent once
}

// endpoint is what the policy knows of one endpoint of the resolver's
// state.
type endpoint struct {
	key   string // in the tracker
	ep    *nearest.Endpoint
	level locality.Level // its nearest level as seen from the client
	ready bool           // its child was READY at the last UpdateState
}

// UpdateClientConnState implements balancer.Balancer: it places each
// endpoint at its level and hands the endpoints to the children.
func (b *lb) UpdateClientConnState(s balancer.ClientConnState) error {
	cfg, ok := s.BalancerConfig.(*parsed)
	if !ok || cfg == nil {
		var err error
		if cfg, err = parseConfig(nil); err != nil {
			return err
		}
	}
	b.mu.Lock()
	if b.tracker == nil || b.cfg.ejection != cfg.ejection || b.cfg.disabled != cfg.disabled {
		// A new ejection setting starts a new history.
		ej := cfg.ejection
		if cfg.disabled {
			ej = nearest.Ejection{ConsecutiveFailures: -1, FailurePercentage: -1}
		}
		ej.Logger = slog.Default().With("target", b.target)
		b.tracker = nearest.NewTracker(ej)
		b.eps = resolver.NewEndpointMap()
	}
	b.cfg = cfg
	eps := resolver.NewEndpointMap()
	for _, ep := range s.ResolverState.Endpoints {
		if len(ep.Addresses) == 0 {
			continue
		}
		if _, dup := eps.Get(ep); dup {
			continue
		}
		var e *endpoint
		if v, ok := b.eps.Get(ep); ok {
			e = v.(*endpoint)
		} else {
			e = &endpoint{key: keyOf(ep)}
			e.ep = b.tracker.Endpoint(e.key)
		}
		l, _ := LocalityOf(ep)
		e.level = cfg.self.Nearest(l) // nearest.LevelOf's rule, from the place
		eps.Set(ep, e)
	}
	for _, ep := range b.eps.Keys() {
		if _, kept := eps.Get(ep); !kept {
			v, _ := b.eps.Get(ep)
			b.tracker.Forget(v.(*endpoint).key) // gone: its history goes too
		}
	}
	b.eps = eps
	b.mu.Unlock()
	// endpointsharding calls UpdateState once, at the end.
	return b.child.UpdateClientConnState(balancer.ClientConnState{
		ResolverState:  pickfirstleaf.EnableHealthListener(s.ResolverState),
		BalancerConfig: nil, // pick_first children take their defaults
	})
}

// keyOf names an endpoint in the channel's tracker: its addresses, ended
// by a separator so that no key is a prefix of another (Forget takes
// prefixes).
func keyOf(ep resolver.Endpoint) string {
	var sb strings.Builder
	for _, a := range ep.Addresses {
		sb.WriteString(a.Addr)
		sb.WriteByte('|')
	}
	return sb.String()
}

func (b *lb) ResolverError(err error) { b.child.ResolverError(err) }

// UpdateSubConnState implements balancer.Balancer; it is deprecated and
// never called for subconns created by the children.
func (b *lb) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

// ExitIdle implements balancer.ExitIdler: the children reconnect by
// themselves (endpointsharding wakes idle ones).
func (b *lb) ExitIdle() {
	if ei, ok := b.child.(balancer.ExitIdler); ok {
		ei.ExitIdle()
	}
}

func (b *lb) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.child.Close()
}

// UpdateState intercepts endpointsharding's state: it keeps the children's
// states and sends lb's own picker.
func (b *lb) UpdateState(s balancer.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.children = endpointsharding.ChildStatesFromPicker(s.Picker)
	b.agg = s
	var ready []pickEndpoint
	level := locality.Level(-1)
	for _, c := range b.children {
		e := b.endpointOf(c.Endpoint)
		wasReady := e.ready
		e.ready = c.State.ConnectivityState == connectivity.Ready
		if !e.ready {
			continue
		}
		if !wasReady && e.ep != nil {
			// A new connection: the failures that ejected the endpoint
			// were the old one's (a server restarted, a datacenter back).
			e.ep.Readmit()
		}
		ready = append(ready, pickEndpoint{picker: c.State.Picker, ep: e.ep, level: e.level})
		if level < 0 || e.level < level {
			level = e.level
		}
	}
	b.logLevelLocked(level, len(ready))
	if len(ready) == 0 {
		// Nothing READY: endpointsharding's own state says whether calls
		// wait (CONNECTING, IDLE) or fail (TRANSIENT_FAILURE, with the
		// children's connection errors).
		b.ClientConn.UpdateState(b.agg)
		return
	}
	b.ClientConn.UpdateState(balancer.State{
		ConnectivityState: connectivity.Ready,
		Picker:            newPicker(ready, b.tracker, !b.cfg.disabled),
	})
}

// endpointOf returns the endpoint record of a child; one the resolver
// state does not hold (never expected) is placed at LevelAny, untracked.
func (b *lb) endpointOf(ep resolver.Endpoint) *endpoint {
	if v, ok := b.eps.Get(ep); ok {
		return v.(*endpoint)
	}
	return &endpoint{level: locality.LevelAny}
}

// logLevelLocked logs a change of the nearest level with READY endpoints
// (ejections are logged by the tracker).
func (b *lb) logLevelLocked(level locality.Level, n int) {
	if level == b.level {
		return
	}
	prev := b.level
	b.level = level
	log := slog.Default()
	switch {
	case level < 0 && prev >= 0:
		log.Warn("grpcbalancer: no READY endpoint at any level", "target", b.target, "previous", prev.String())
	case level < 0:
		// Still starting.
	case prev < 0 && !b.started:
		log.Debug("grpcbalancer: first READY level", "target", b.target, "level", level.String(), "endpoints", n)
	default:
		log.Info("grpcbalancer: nearest READY level changed", "target", b.target, "level", level.String(), "previous", levelName(prev), "endpoints", n)
	}
	if level >= 0 {
		b.started = true
	}
}

func levelName(l locality.Level) string {
	if l < 0 {
		return "none"
	}
	return l.String()
}

// String is for grpc-go's logs.
func (b *lb) String() string { return fmt.Sprintf("%s[%s]", Name, b.target) }
