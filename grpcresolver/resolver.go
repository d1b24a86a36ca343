package grpcresolver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/regchain/regchain/registry"
)

// event is one result of the watcher's Next.
type event struct {
	u   *registry.Update
	err error
}

// resolverImpl is one Build's resolver. Two goroutines: reader turns the
// watcher's Next into events; run is the only one that calls the
// ClientConn, so pushes never happen under a lock and never after Close.
type resolverImpl struct {
	name   string
	cc     resolver.ClientConn
	w      registry.Watcher
	ctx    context.Context
	cancel context.CancelFunc
	b      *Builder
	opts   *options
	log    *slog.Logger
	events chan event // capacity 1, latest wins: see reader
	wg     sync.WaitGroup
	once   sync.Once

	// Owned by run.
	pushed  bool                 // a state has been pushed
	last    []*registry.Instance // the instances of the last state pushed
	empty   *time.Timer          // pending push of an empty state; nil if none
	emptyAt <-chan time.Time
	scJSON  string                     // the service config last parsed
	sc      *serviceconfig.ParseResult // its parse
}

func newResolver(ctx context.Context, cancel context.CancelFunc, name string, cc resolver.ClientConn,
	w registry.Watcher, b *Builder) *resolverImpl {
	return &resolverImpl{
		name:   name,
		cc:     cc,
		w:      w,
		ctx:    ctx,
		cancel: cancel,
		b:      b,
		opts:   &b.opts,
		log:    b.opts.logger.With("service", name),
		events: make(chan event, 1),
	}
}

func (r *resolverImpl) start() {
	r.wg.Add(2)
	go r.reader()
	go r.run()
}

// ResolveNow implements resolver.Resolver. The resolver is watch-based:
// there is nothing to do.
func (r *resolverImpl) ResolveNow(resolver.ResolveNowOptions) {}

// Close implements resolver.Resolver: it stops the watcher and waits for
// the resolver's goroutines. It is idempotent.
func (r *resolverImpl) Close() {
	r.once.Do(func() {
		r.cancel()
		r.w.Stop()
		r.wg.Wait()
	})
}

// reader feeds run with the watcher's results. An event not yet taken by
// run is replaced by a newer one: an Update is a complete state, and an
// error after an Update changes nothing run has to do but log it.
func (r *resolverImpl) reader() {
	defer r.wg.Done()
	for {
		u, err := r.w.Next()
		if r.ctx.Err() != nil {
			return
		}
		ev := event{u: u, err: err}
		select {
		case r.events <- ev:
		default:
			// run is busy: replace the pending event, unless it is an
			// Update and this is an error (the Update matters more).
			select {
			case old := <-r.events:
				if old.u != nil && err != nil {
					ev = old
				}
			default:
			}
			r.events <- ev // run is the only other party: there is room now
		}
		if err != nil && (errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed)) {
			return // the watcher has ended; the last state stays
		}
	}
}

// run applies events to the ClientConn until Close.
func (r *resolverImpl) run() {
	defer r.wg.Done()
	defer func() {
		if r.empty != nil {
			r.empty.Stop()
		}
	}()
	for {
		select {
		case <-r.ctx.Done():
			return
		case ev := <-r.events:
			if ev.err != nil {
				r.fail(ev.err)
			} else {
				r.update(ev.u)
			}
		case <-r.emptyAt:
			r.empty, r.emptyAt = nil, nil
			r.push(nil)
		}
	}
}

// fail handles a watcher error: nothing is pushed; the error goes to
// ReportError only while no usable state has been pushed.
func (r *resolverImpl) fail(err error) {
	if len(r.last) > 0 {
		r.log.Debug("grpcresolver: watch error; keeping the last addresses", "error", err, "addresses", len(r.last))
		return
	}
	r.log.Warn("grpcresolver: watch error and no address known", "error", err)
	r.cc.ReportError(err)
}

// update handles a new state of the service.
func (r *resolverImpl) update(u *registry.Update) {
	usable := usableInstances(u.Instances, r.opts.endpoint)
	r.b.leftOut(r.log, r.name, u.Instances, usable)
	if len(usable) == 0 {
		if r.pushed && len(r.last) == 0 {
			return // already empty
		}
		if r.opts.emptyDelay <= 0 {
			r.push(nil)
			return
		}
		if r.empty == nil {
			r.log.Info("grpcresolver: service has no address; pushing the empty list if it stays so",
				"source", u.Source, "delay", r.opts.emptyDelay)
			r.empty = time.NewTimer(r.opts.emptyDelay)
			r.emptyAt = r.empty.C
		}
		return
	}
	if r.empty != nil {
		r.empty.Stop()
		r.empty, r.emptyAt = nil, nil
	}
	if r.pushed && registry.EqualInstances(r.last, usable) {
		return
	}
	r.push(usable)
}

// push sends the state built from ins (nil: the empty list).
func (r *resolverImpl) push(ins []*registry.Instance) {
	if len(ins) == 0 && r.pushed && len(r.last) > 0 {
		r.log.Info("grpcresolver: pushing an empty address list", "previous", len(r.last))
	}
	r.pushed = true
	r.last = ins
	st, hasLocality := buildState(ins, r.opts.endpoint)
	st.ServiceConfig = r.serviceConfig(hasLocality)
	// The error is the balancer's opinion of the state (an empty list is
	// "bad" to most): a watch-based resolver has nothing to re-resolve.
	_ = r.cc.UpdateState(st)
}

// serviceConfig returns the parsed service config for a state, nil for
// none.
func (r *resolverImpl) serviceConfig(hasLocality bool) *serviceconfig.ParseResult {
	js := r.b.sc.pick(hasLocality)
	if js == "" {
		return nil
	}
	if js != r.scJSON || r.sc == nil {
		r.scJSON, r.sc = js, r.cc.ParseServiceConfig(js)
		if r.sc != nil && r.sc.Err != nil {
			r.log.Error("grpcresolver: service config refused by grpc-go", "error", r.sc.Err)
		}
	}
	return r.sc
}
