package locality

import (
	"context"

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
}

// Wrap returns reg with locality-aware reads and stamped registrations; see
// the package doc. The result is safe for concurrent use; closing it closes
// reg.
func Wrap(reg registry.Registry, cfg Config) registry.Registry {
	self := cfg.Self.orEnv()
	w := &wrapped{inner: reg, self: self, sel: NewSelector(self, cfg.Thresholds)}
	p, isPinger := reg.(registry.Pinger)
	rr, isReporter := reg.(registry.RegistrationReporter)
	switch {
	case isPinger && isReporter:
		return &struct {
			*wrapped
			registry.Pinger
			registry.RegistrationReporter
		}{w, p, rr}
	case isPinger:
		return &struct {
			*wrapped
			registry.Pinger
		}{w, p}
	case isReporter:
		return &struct {
			*wrapped
			registry.RegistrationReporter
		}{w, rr}
	default:
		return w
	}
}

type wrapped struct {
	inner registry.Registry
	self  Locality
	sel   *Selector
}

var _ registry.SharedReader = (*wrapped)(nil)

// Register implements registry.Registry: it stamps the instance with the
// process's zone and region where it has none.
func (w *wrapped) Register(ctx context.Context, in *registry.Instance) error {
	return w.inner.Register(ctx, Stamp(in, w.self))
}

// Deregister implements registry.Registry.
func (w *wrapped) Deregister(ctx context.Context, in *registry.Instance) error {
	return w.inner.Deregister(ctx, in)
}

// GetService implements registry.Registry: the instances of the selected
// level.
func (w *wrapped) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	ins, err := w.inner.GetService(ctx, name)
	if err != nil {
		return nil, err
	}
	return w.sel.Select(name, ins), nil
}

// GetServiceShared implements registry.SharedReader.
func (w *wrapped) GetServiceShared(ctx context.Context, name string) ([]*registry.Instance, error) {
	ins, err := registry.GetServiceShared(ctx, w.inner, name)
	if err != nil {
		return nil, err
	}
	return w.sel.Select(name, ins), nil
}

// ListServices implements registry.Registry.
func (w *wrapped) ListServices(ctx context.Context) ([]string, error) {
	return w.inner.ListServices(ctx)
}

// Watch implements registry.Registry: each Update carries the instances of
// the selected level.
func (w *wrapped) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	iw, err := w.inner.Watch(ctx, name)
	if err != nil {
		return nil, err
	}
	return &watcher{inner: iw, sel: w.sel, last: make(map[string]*registry.Update)}, nil
}

// Close implements registry.Registry.
func (w *wrapped) Close() error { return w.inner.Close() }

// watcher filters an inner watcher. Next is called from one goroutine (the
// Watcher contract), so last needs no lock.
type watcher struct {
	inner registry.Watcher
	sel   *Selector
	last  map[string]*registry.Update // last delivered per service
}

func (w *watcher) Next() (*registry.Update, error) {
	for {
		u, err := w.inner.Next()
		if err != nil {
			return nil, err
		}
		u.Instances = w.sel.Select(u.Service, u.Instances)
		if prev, ok := w.last[u.Service]; ok && prev.SameState(u) {
			continue
		}
		w.last[u.Service] = u.Clone()
		return u, nil
	}
}

func (w *watcher) Stop() error { return w.inner.Stop() }
