package locality

import (
	"context"
	"fmt"
	"sync"

	"github.com/regchain/regchain/registry"
)

// Config configures Wrap.
type Config struct {
	// Self is the reader's (and this process's registrations') place. An
	// empty field is read from REGCHAIN_ZONE / REGCHAIN_REGION once, by
	// Wrap.
	Self Locality
	// Thresholds decide when a level is left and re-entered.
	Thresholds Thresholds
	// Own makes Close close the wrapped registry too. If false (the
	// default), the wrapped registry is the caller's: Close ends the
	// wrapper only.
	Own bool
}

// Registry is a registry.Registry with locality-aware reads: what Wrap
// returns. Besides the registry it tells which level each service is on.
type Registry interface {
	registry.Registry
	// Level returns the level service's reads are on and why.
	Level(service string) LevelState
	// Self returns the reader's place: Config.Self completed from the
	// environment.
	Self() Locality
	// Unwrap returns the wrapped registry, whose reads hold every level.
	Unwrap() registry.Registry
}

// Wrap returns reg with locality-aware reads and stamped registrations; see
// the package doc. The result is safe for concurrent use; closing it closes
// reg only with Config.Own.
func Wrap(reg registry.Registry, cfg Config) Registry {
	self := cfg.Self.OrEnv()
	w := &wrapped{inner: reg, self: self, own: cfg.Own, sel: NewSelector(self, cfg.Thresholds),
		watchers: make(map[*watcher]struct{})}
	p, isPinger := reg.(registry.Pinger)
	rr, isReporter := reg.(registry.RegistrationReporter)
	switch {
	case isPinger && isReporter:
		return &struct {
			*wrapped
			pinger
			reporter
		}{w, pinger{w, p}, reporter{w, rr}}
	case isPinger:
		return &struct {
			*wrapped
			pinger
		}{w, pinger{w, p}}
	case isReporter:
		return &struct {
			*wrapped
			reporter
		}{w, reporter{w, rr}}
	default:
		return w
	}
}

type wrapped struct {
	inner registry.Registry
	self  Locality
	own   bool
	sel   *Selector

	mu       sync.Mutex // guards the fields below
	closed   bool
	watchers map[*watcher]struct{} // live watchers, ended by Close
}

var (
	_ registry.SharedReader = (*wrapped)(nil)
	_ Registry              = (*wrapped)(nil)
)

func (w *wrapped) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func errClosed(op string) error { return fmt.Errorf("locality: %s: %w", op, registry.ErrClosed) }

// Level implements Registry.
func (w *wrapped) Level(service string) LevelState { return w.sel.State(service) }

// Self implements Registry.
func (w *wrapped) Self() Locality { return w.self }

// Unwrap implements Registry.
func (w *wrapped) Unwrap() registry.Registry { return w.inner }

// Register implements registry.Registry: it stamps the instance with the
// process's zone and region where it has none.
func (w *wrapped) Register(ctx context.Context, in *registry.Instance) error {
	if w.isClosed() {
		return errClosed("register")
	}
	return w.inner.Register(ctx, Stamp(in, w.self))
}

// Deregister implements registry.Registry.
func (w *wrapped) Deregister(ctx context.Context, in *registry.Instance) error {
	if w.isClosed() {
		return errClosed("deregister")
	}
	return w.inner.Deregister(ctx, in)
}

// GetService implements registry.Registry: the instances of the selected
// level.
func (w *wrapped) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if w.isClosed() {
		return nil, errClosed("get")
	}
	ins, err := w.inner.GetService(ctx, name)
	if err != nil {
		return nil, err
	}
	return w.sel.Select(name, ins), nil
}

// GetServiceShared implements registry.SharedReader.
func (w *wrapped) GetServiceShared(ctx context.Context, name string) ([]*registry.Instance, error) {
	if w.isClosed() {
		return nil, errClosed("get")
	}
	ins, err := registry.GetServiceShared(ctx, w.inner, name)
	if err != nil {
		return nil, err
	}
	return w.sel.Select(name, ins), nil
}

// ListServices implements registry.Registry.
func (w *wrapped) ListServices(ctx context.Context) ([]string, error) {
	if w.isClosed() {
		return nil, errClosed("list")
	}
	return w.inner.ListServices(ctx)
}

// Watch implements registry.Registry: each Update carries the instances of
// the selected level.
func (w *wrapped) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if w.isClosed() {
		return nil, errClosed("watch")
	}
	iw, err := w.inner.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	wt := &watcher{inner: iw, w: w, last: make(map[string]*registry.Update)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		iw.Stop()
		return nil, errClosed("watch")
	}
	w.watchers[wt] = struct{}{}
	w.mu.Unlock()
	return wt, nil
}

// Close implements registry.Registry: it ends the wrapper's watchers and,
// with Config.Own, closes the wrapped registry.
func (w *wrapped) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	ws := w.watchers
	w.watchers = nil
	w.mu.Unlock()
	for wt := range ws {
		wt.end()
	}
	if w.own {
		return w.inner.Close()
	}
	return nil
}

// pinger is the wrapper's registry.Pinger, present when the wrapped
// registry has one.
type pinger struct {
	w *wrapped
	p registry.Pinger
}

func (p pinger) Ping(ctx context.Context) error {
	if p.w.isClosed() {
		return errClosed("ping")
	}
	return p.p.Ping(ctx)
}

// reporter is the wrapper's registry.RegistrationReporter, present when
// the wrapped registry has one.
type reporter struct {
	w  *wrapped
	rr registry.RegistrationReporter
}

func (r reporter) Registrations() []registry.RegistrationState {
	if r.w.isClosed() {
		return nil
	}
	return r.rr.Registrations()
}

// watcher filters an inner watcher. Next is called from one goroutine (the
// Watcher contract), so last needs no lock.
type watcher struct {
	inner registry.Watcher
	w     *wrapped
	last  map[string]*registry.Update // last delivered per service

	mu     sync.Mutex // guards closed
	closed bool       // ended by the wrapper's Close
}

func (w *watcher) Next() (*registry.Update, error) {
	for {
		u, err := w.inner.Next()
		if err != nil {
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return nil, fmt.Errorf("locality: watcher: %w: %w", registry.ErrClosed, registry.ErrStopped)
			}
			return nil, err
		}
		u.Instances = w.w.sel.Select(u.Service, u.Instances)
		if prev, ok := w.last[u.Service]; ok && prev.SameState(u) {
			continue
		}
		w.last[u.Service] = u.Clone()
		return u, nil
	}
}

func (w *watcher) Stop() error {
	w.w.mu.Lock()
	delete(w.w.watchers, w)
	w.w.mu.Unlock()
	return w.inner.Stop()
}

// end stops w for the wrapper's Close.
func (w *watcher) end() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.inner.Stop()
}
