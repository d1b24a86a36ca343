package locality

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

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
// reg only with Config.Own. It has every optional capability of reg (see
// the package doc, "Optional capabilities").
func Wrap(reg registry.Registry, cfg Config) Registry {
	self := cfg.Self.OrEnv()
	w := &wrapped{inner: reg, self: self, own: cfg.Own, sel: NewSelector(self, cfg.Thresholds),
		watchers: make(map[*watcher]struct{})}
	w.selectFn = w.selectState
	return withCapabilities(w)
}

type wrapped struct {
	inner registry.Registry
	self  Locality
	own   bool
	sel   *Selector
	memo  registry.Memo // selections (a *selected per state of inner)

	selectFn func([]*registry.Instance) any // selectState

	closed atomic.Bool // set by Close, under mu

	mu       sync.Mutex            // guards watchers, and Close against Watch
	watchers map[*watcher]struct{} // live watchers, ended by Close
}

var (
	_ registry.SharedReader = (*wrapped)(nil)
	_ registry.Deriver      = (*wrapped)(nil)
	_ registry.Validator    = (*wrapped)(nil)
	_ Registry              = (*wrapped)(nil)
)

func (w *wrapped) isClosed() bool { return w.closed.Load() }

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

// ValidateInstance implements registry.Validator: what Register would
// refuse is the stamped instance, by registry.Validate or by the wrapped
// registry's own Validator.
func (w *wrapped) ValidateInstance(in *registry.Instance) error {
	st := Stamp(in, w.self)
	if err := registry.Validate(st); err != nil {
		return err
	}
	if v, ok := w.inner.(registry.Validator); ok {
		return v.ValidateInstance(st)
	}
	return nil
}

// selKey is a wrapper's key for its selection of a state. It holds the
// wrapper: wrappers over one registry keep selections of their own.
type selKey struct{ w *wrapped }

// selected is a wrapper's selection of one state of the wrapped registry,
// and the values its Derive makes of it.
type selected struct {
	ins  []*registry.Instance // the selected level's, shared, never modified
	memo registry.StateMemo
}

// selectState makes the selection of a state (never empty: derive never
// sees an empty state, and every instance of it carries the service's
// name). It is a method value made once, so that a read allocates no
// closure.
func (w *wrapped) selectState(ins []*registry.Instance) any {
	return &selected{ins: w.sel.Select(ins[0].Name, ins)}
}

// selection returns name's state selected, made once per state of the
// wrapped registry.
func (w *wrapped) selection(ctx context.Context, name string) (*selected, error) {
	v, err := w.memo.Derive(ctx, w.inner, name, selKey{w}, w.selectFn)
	if err != nil {
		return nil, err
	}
	return v.(*selected), nil
}

// GetService implements registry.Registry: the instances of the selected
// level.
func (w *wrapped) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if w.isClosed() {
		return nil, errClosed("get")
	}
	sel, err := w.selection(ctx, name)
	if err != nil {
		return nil, err
	}
	return registry.CloneInstances(sel.ins), nil
}

// GetServiceShared implements registry.SharedReader.
func (w *wrapped) GetServiceShared(ctx context.Context, name string) ([]*registry.Instance, error) {
	if w.isClosed() {
		return nil, errClosed("get")
	}
	sel, err := w.selection(ctx, name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(sel.ins), nil
}

// Derive implements registry.Deriver: derive runs on the selected level's
// instances once per state of the wrapped registry and key.
func (w *wrapped) Derive(ctx context.Context, name string, key any, derive func([]*registry.Instance) any) (any, error) {
	if w.isClosed() {
		return nil, errClosed("derive")
	}
	sel, err := w.selection(ctx, name)
	if err != nil {
		return nil, err
	}
	return sel.memo.Derive(name, sel.ins, key, derive)
}

// ListServices implements registry.Registry.
func (w *wrapped) ListServices(ctx context.Context) ([]string, error) {
	if w.isClosed() {
		return nil, errClosed("list")
	}
	return w.inner.ListServices(ctx)
}

// Close implements registry.Registry: it ends the wrapper's watchers and,
// with Config.Own, closes the wrapped registry.
func (w *wrapped) Close() error {
	w.mu.Lock()
	if w.closed.Load() {
		w.mu.Unlock()
		return nil
	}
	w.closed.Store(true)
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
