package locality

import (
	"context"
	"time"

	"github.com/regchain/regchain/registry"
)

// withCapabilities returns w with the optional capabilities of the wrapped
// registry that a wrapper cannot have without it: registry.Pinger,
// registry.RegistrationReporter and registry.TTLRegistrar, each exactly
// when the wrapped registry has it. (The others it always has:
// SharedReader, Deriver and Validator, and its watchers are Notifiers
// exactly when the wrapped registry's are.)
func withCapabilities(w *wrapped) Registry {
	p, isP := w.inner.(registry.Pinger)
	r, isR := w.inner.(registry.RegistrationReporter)
	t, isT := w.inner.(registry.TTLRegistrar)
	pp, rr, tt := pinger{w, p}, reporter{w, r}, ttlRegistrar{w, t}
	switch {
	case isP && isR && isT:
		return &struct {
			*wrapped
			pinger
			reporter
			ttlRegistrar
		}{w, pp, rr, tt}
	case isP && isR:
		return &struct {
			*wrapped
			pinger
			reporter
		}{w, pp, rr}
	case isP && isT:
		return &struct {
			*wrapped
			pinger
			ttlRegistrar
		}{w, pp, tt}
	case isR && isT:
		return &struct {
			*wrapped
			reporter
			ttlRegistrar
		}{w, rr, tt}
	case isP:
		return &struct {
			*wrapped
			pinger
		}{w, pp}
	case isR:
		return &struct {
			*wrapped
			reporter
		}{w, rr}
	case isT:
		return &struct {
			*wrapped
			ttlRegistrar
		}{w, tt}
	default:
		return w
	}
}

// pinger is the wrapper's registry.Pinger.
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

// reporter is the wrapper's registry.RegistrationReporter.
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

// ttlRegistrar is the wrapper's registry.TTLRegistrar: RegisterTTL stamps
// the instance as Register does.
type ttlRegistrar struct {
	w *wrapped
	t registry.TTLRegistrar
}

func (t ttlRegistrar) RegisterTTL(ctx context.Context, in *registry.Instance, ttl time.Duration) error {
	if t.w.isClosed() {
		return errClosed("register")
	}
	return t.t.RegisterTTL(ctx, Stamp(in, t.w.self), ttl)
}
