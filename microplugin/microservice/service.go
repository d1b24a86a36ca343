package microservice

import (
	"errors"

	"go-micro.dev/v4"
	"go-micro.dev/v4/client"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
	"github.com/regchain/regchain/microplugin"
)

// Config configures Nearest. The zero value is usable.
type Config struct {
	// Self is the client's place. An empty field is read from
	// REGCHAIN_ZONE / REGCHAIN_REGION.
	Self locality.Locality
	// Ejection: see WithEjection.
	Ejection nearest.Ejection
	// Retry: see Retry and AttemptTimeouts.
	Retry RetryConfig
}

// Nearest is a go-micro service option: the service's client gets a
// NewSelector over the service's registry, Retry, Backoff and
// AttemptTimeouts; the selector is closed when the service stops.
// go-micro's other retry settings (client.Retries,
// client.ConnectionTimeout, ...) stay as set.
func Nearest(cfg Config) micro.Option {
	return func(o *micro.Options) {
		sel := NewSelector(selector.Registry(o.Registry), WithLocality(cfg.Self), WithEjection(cfg.Ejection))
		o.Client.Init(client.Selector(sel), client.Retry(Retry(cfg.Retry)), client.Backoff(Backoff))
		o.Client = AttemptTimeouts(cfg.Retry)(o.Client)
		o.AfterStop = append(o.AfterStop, sel.Close)
	}
}

// CloseOnStop is a go-micro service option: when the service stops (after
// it has deregistered), every microplugin registry of the service — its
// own, its client's and its server's — is closed with its chain, etcd
// client and snapshot. Registries of other kinds are left alone.
func CloseOnStop() micro.Option {
	return func(o *micro.Options) {
		o.AfterStop = append(o.AfterStop, func() error {
			var (
				errs []error
				done []*microplugin.Registry
			)
			for _, r := range []mreg.Registry{o.Registry, o.Client.Options().Registry, o.Server.Options().Registry} {
				p, ok := r.(*microplugin.Registry)
				if !ok || p == nil || contains(done, p) {
					continue
				}
				done = append(done, p)
				errs = append(errs, p.Close())
			}
			return errors.Join(errs...)
		})
	}
}

func contains(list []*microplugin.Registry, p *microplugin.Registry) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}
