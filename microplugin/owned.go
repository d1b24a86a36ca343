package microplugin

import (
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// Backend is a registry the plugin owns, built from go-micro's registry
// options: etcdchain.NewRegistry's chain over etcd. go-micro configures a
// registry through Init (again after parsing its command line), so the
// plugin hands every Init's result to Configure, and Close closes it.
type Backend interface {
	registry.Registry
	// Configure takes the plugin's options after each Init (Options'
	// copy). An error is Init's.
	Configure(opts mreg.Options) error
}

// NewOwning returns a Registry serving b, which it owns: b.Configure gets
// the options after every Init, and Close closes b. It panics if b is nil.
// Program code uses etcdchain.NewRegistry; NewOwning is for constructors
// of that kind.
func NewOwning(b Backend, opts ...mreg.Option) *Registry {
	if b == nil {
		panic("microplugin: NewOwning called with a nil backend")
	}
	p := newRegistry(b)
	p.owned = b
	_ = p.Init(opts...)
	return p
}

// Unwrap returns the registry p serves: New's r, or NewOwning's backend.
func (p *Registry) Unwrap() registry.Registry { return p.backend }

// Close closes what p owns: NewOwning's backend (for
// etcdchain.NewRegistry: the chain, its etcd client and its snapshot,
// flushed). A Registry made by New owns nothing: Close does nothing and
// the backend stays the caller's. go-micro's registry interface has no
// Close; call it at shutdown, after the service stopped, or let the
// service do it (microservice.CloseOnStop).
func (p *Registry) Close() error {
	if p.owned != nil {
		return p.owned.Close()
	}
	return nil
}

// Close closes r if it is a Registry (see Registry.Close) and does
// nothing otherwise: the close hook for a go-micro registry held as
// go-micro's interface, which has no Close. With a go-micro service,
// microservice.CloseOnStop calls it when the service stops; without one,
// at shutdown:
//
//	reg := etcdchain.NewRegistry(registry.Addrs("10.0.0.1:2379"))
//	defer microplugin.Close(reg)
func Close(r mreg.Registry) error {
	if p, ok := r.(*Registry); ok {
		return p.Close()
	}
	return nil
}
