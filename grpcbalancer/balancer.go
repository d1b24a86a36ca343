package grpcbalancer

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst/pickfirstleaf"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/regchain/regchain/locality"
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
// lb intercepts to build its own picker.
//
// grpc-go serializes the calls into a balancer (UpdateClientConnState,
// ResolverError, Close and the children's state updates); lb's own
// goroutines (the ejection timer, ejections triggered by calls) take mu.
type lb struct {
	balancer.ClientConn // the channel; UpdateState is intercepted
	child               balancer.Balancer
	target              string

	mu       sync.Mutex // guards the fields below; held while sending a picker
	closed   bool
	cfg      *parsed
	eps      *resolver.EndpointMap // resolver.Endpoint -> *endpoint
	list     []*endpoint           // eps' values
	children []endpointsharding.ChildState
	agg      balancer.State // endpointsharding's own state and picker
	level    locality.Level // of the last READY picker; -1: none yet
	panic    bool           // the last picker used ejected endpoints
	started  bool           // a READY picker was sent once
	timer    *time.Timer    // nil: not armed
	timerGen uint64         // the armed timer's; an older one that fires does nothing
	lastTick time.Time
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
	b.cfg = cfg
	eps := resolver.NewEndpointMap()
	list := make([]*endpoint, 0, len(s.ResolverState.Endpoints))
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
			e = &endpoint{addr: ep.Addresses[0].Addr}
		}
		l, _ := LocalityOf(ep)
		e.level = cfg.self.Nearest(l)
		eps.Set(ep, e)
		list = append(list, e)
	}
	b.eps, b.list = eps, list
	b.mu.Unlock()
	// endpointsharding calls UpdateState once, at the end.
	return b.child.UpdateClientConnState(balancer.ClientConnState{
		ResolverState:  pickfirstleaf.EnableHealthListener(s.ResolverState),
		BalancerConfig: nil, // pick_first children take their defaults
	})
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
	if b.timer != nil {
		b.timer.Stop()
	}
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
	b.updateLocked()
}

// updateLocked sends the picker of the current children's states and
// ejections.
func (b *lb) updateLocked() {
	var ready, ejected [3][]pickEndpoint
	for _, c := range b.children {
		if c.State.ConnectivityState != connectivity.Ready {
			continue
		}
		e := b.endpointOf(c.Endpoint)
		pe := pickEndpoint{picker: c.State.Picker, e: e}
		if e.ejected {
			ejected[e.level] = append(ejected[e.level], pe)
		} else {
			ready[e.level] = append(ready[e.level], pe)
		}
	}
	level, eps, panicked := locality.Level(-1), []pickEndpoint(nil), false
	for l := range ready {
		if len(ready[l]) > 0 {
			level, eps = locality.Level(l), ready[l]
			break
		}
	}
	if eps == nil {
		for l := range ejected {
			if len(ejected[l]) > 0 {
				level, eps, panicked = locality.Level(l), ejected[l], true
				break
			}
		}
	}
	b.logLevelLocked(level, len(eps), panicked)
	if eps == nil {
		// Nothing READY: endpointsharding's own state says whether calls
		// wait (CONNECTING, IDLE) or fail (TRANSIENT_FAILURE, with the
		// children's connection errors).
		b.ClientConn.UpdateState(b.agg)
		return
	}
	b.ClientConn.UpdateState(balancer.State{
		ConnectivityState: connectivity.Ready,
		Picker:            newPicker(b, eps),
	})
	b.armLocked()
}

// endpointOf returns the endpoint record of a child; one the resolver
// state does not hold (never expected) is placed at LevelAny, untracked.
func (b *lb) endpointOf(ep resolver.Endpoint) *endpoint {
	if v, ok := b.eps.Get(ep); ok {
		return v.(*endpoint)
	}
	return &endpoint{level: locality.LevelAny}
}

func (b *lb) logLevelLocked(level locality.Level, n int, panicked bool) {
	if level == b.level && panicked == b.panic {
		return
	}
	prev, wasPanic := b.level, b.panic
	b.level, b.panic = level, panicked
	log := slog.Default()
	switch {
	case level < 0 && prev >= 0:
		log.Warn("grpcbalancer: no READY endpoint at any level", "target", b.target, "previous", prev.String())
	case level < 0:
		// Still starting.
	case panicked:
		log.Warn("grpcbalancer: only ejected endpoints are READY; using them", "target", b.target, "level", level.String(), "endpoints", n)
	case level == prev && wasPanic:
		log.Info("grpcbalancer: READY endpoints that are not ejected again", "target", b.target, "level", level.String(), "endpoints", n)
	case prev < 0 && !b.started:
		log.Debug("grpcbalancer: first READY level", "target", b.target, "level", level.String(), "endpoints", n)
	default:
		log.Info("grpcbalancer: picking from another level", "target", b.target, "level", level.String(), "previous", levelName(prev), "endpoints", n)
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

// failedCall is called by a picker's Done when e has just reached the
// consecutive failure limit. It runs on the RPC's goroutine, where grpc-go
// may hold its own locks: the ejection runs on a goroutine of its own.
func (b *lb) failedCall(e *endpoint) {
	go func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.closed || b.cfg == nil || !b.tracked(e) {
			return
		}
		x := ejection{cfg: b.cfg.outlier}
		if x.eject(e, b.list, time.Now()) {
			slog.Default().Warn("grpcbalancer: endpoint ejected after consecutive failures", "target", b.target,
				"endpoint", e.addr, "level", e.level.String(), "failures", b.cfg.outlier.consecutiveFailures,
				"for", x.until(e).Sub(e.ejectedAt))
			b.updateLocked()
			b.rearmLocked() // its end may come before the next interval's
		}
	}()
}

func (b *lb) tracked(e *endpoint) bool {
	for _, x := range b.list {
		if x == e {
			return true
		}
	}
	return false
}

// rearmLocked arms the ejection timer afresh.
func (b *lb) rearmLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.armLocked()
}

// armLocked makes sure the ejection timer runs while outlier detection is
// on: at the next interval's end, or sooner when an ejection ends.
func (b *lb) armLocked() {
	if b.closed || b.cfg == nil || b.cfg.outlier.disabled || b.timer != nil {
		return
	}
	now := time.Now()
	if b.lastTick.IsZero() {
		b.lastTick = now
	}
	b.timerGen++
	gen := b.timerGen
	b.timer = time.AfterFunc(b.nextTickLocked(now), func() { b.tick(gen) })
}

func (b *lb) nextTickLocked(now time.Time) time.Duration {
	x := ejection{cfg: b.cfg.outlier}
	d := b.lastTick.Add(x.cfg.interval).Sub(now)
	for _, e := range b.list {
		if e.ejected {
			d = min(d, x.until(e).Sub(now))
		}
	}
	return max(d, time.Millisecond)
}

// tick ends ejections that ran out and, once per interval, judges failure
// rates.
func (b *lb) tick(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.timerGen {
		return // stopped and replaced while it fired
	}
	b.timer = nil
	if b.closed || b.cfg == nil || b.cfg.outlier.disabled {
		return
	}
	x := ejection{cfg: b.cfg.outlier}
	now := time.Now()
	changed, _ := x.readmit(b.list, now)
	if changed {
		slog.Default().Info("grpcbalancer: ejected endpoints re-admitted", "target", b.target)
	}
	if now.Sub(b.lastTick) >= x.cfg.interval {
		b.lastTick = now
		for _, e := range x.interval(b.list, now) {
			changed = true
			slog.Default().Warn("grpcbalancer: endpoint ejected for its failure rate", "target", b.target,
				"endpoint", e.addr, "level", e.level.String(), "for", x.until(e).Sub(e.ejectedAt))
		}
	}
	if changed && b.children != nil {
		b.updateLocked() // re-arms
		return
	}
	b.armLocked()
}

// String is for grpc-go's logs.
func (b *lb) String() string { return fmt.Sprintf("%s[%s]", Name, b.target) }
