package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

// Register implements registry.Registry. The first write (lease grant and
// put) runs under ctx; when it fails Register returns the error (wrapping
// ErrUnavailable when etcd could not be reached) and keeps nothing: the
// caller retries. Once written, the registration is kept alive on the
// registry's own context until Deregister or Close, re-granted and re-put
// whenever the lease is lost or the key is deleted or overwritten by
// someone else, with capped backoff and no retry limit.
//
// Registering an instance already registered here updates it in place (same
// lease). If that write fails, the error is returned and the registration
// stays, with the new data, which the keepalive loop writes as soon as etcd
// answers.
func (r *Registry) Register(ctx context.Context, in *registry.Instance) error {
	return r.register(ctx, in, r.ttl)
}

// RegisterTTL implements registry.TTLRegistrar: Register with a lease of
// ttl (rounded up to whole seconds; etcd raises it to its minimum) instead
// of Config.TTL. ttl <= 0 means Config.TTL. An instance already registered
// here keeps its lease and so its TTL.
func (r *Registry) RegisterTTL(ctx context.Context, in *registry.Instance, ttl time.Duration) error {
	if ttl <= 0 {
		return r.register(ctx, in, r.ttl)
	}
	return r.register(ctx, in, ttlSeconds(ttl))
}

func (r *Registry) register(ctx context.Context, in *registry.Instance, ttl int64) error {
	val, err := r.marshal(in)
	if err != nil {
		return fmt.Errorf("etcd: register: %w", err)
	}
	if r.isClosed() {
		return r.c.errClosed("register " + in.String())
	}
	op := "register " + in.String()
	key := r.rec.key(in.Name, in.ID)
	unlock, err := r.locks.Lock(ctx, r.c.ctx.Done(), key)
	if err != nil {
		return r.c.wrapErr(ctx, op, err)
	}
	defer unlock()
	r.mu.Lock()
	closed, g := r.closed, r.regs[key]
	r.mu.Unlock()
	if closed {
		return r.c.errClosed(op)
	}
	inst := in.Clone()
	if g != nil {
		return g.update(ctx, op, inst, string(val))
	}

	octx, cancel := r.c.opCtx(ctx)
	defer cancel()
	lease, rev, err := grantPut(octx, r.c, key, string(val), ttl)
	if err != nil {
		return r.c.wrapErr(ctx, op, err)
	}
	g = newRegistration(r.c, key, inst, string(val), lease, ttl)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		// The caller is told it failed: take the record back.
		rctx, rcancel := context.WithTimeout(context.Background(), r.c.timeout)
		defer rcancel()
		r.c.client.Revoke(rctx, lease) //nolint:errcheck // best effort; the lease expires anyway
		return r.c.errClosed(op)
	}
	r.regs[key] = g
	r.c.spawn(func() { g.run(lease, rev) }) // r.closed is false: Close has not shut c
	r.mu.Unlock()
	return nil
}

// Deregister implements registry.Registry: it stops the keepalive, deletes
// the key and revokes the lease. If etcd cannot be reached it returns an
// error wrapping ErrUnavailable; the keepalive is stopped all the same, so
// the record disappears when its lease runs out.
func (r *Registry) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := registry.ValidateKey(in); err != nil {
		return fmt.Errorf("etcd: deregister: %w", err)
	}
	op := "deregister " + in.Key()
	if r.isClosed() {
		return r.c.errClosed(op)
	}
	key := r.rec.key(in.Name, in.ID)
	unlock, err := r.locks.Lock(ctx, r.c.ctx.Done(), key)
	if err != nil {
		return r.c.wrapErr(ctx, op, err)
	}
	defer unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.c.errClosed(op)
	}
	g := r.regs[key]
	delete(r.regs, key)
	r.mu.Unlock()
	var lease clientv3.LeaseID
	if g != nil {
		lease = g.stop()
	}
	octx, cancel := r.c.opCtx(ctx)
	defer cancel()
	err = withLeader(octx, func(ctx context.Context) error {
		_, err := r.c.client.Delete(ctx, key)
		return err
	})
	if err != nil {
		return r.c.wrapErr(ctx, op, err)
	}
	if lease != 0 {
		err := withLeader(octx, func(ctx context.Context) error {
			_, err := r.c.client.Revoke(ctx, lease)
			return err
		})
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return r.c.wrapErr(ctx, op+": revoke lease", err)
		}
	}
	return nil
}

// Registrations implements registry.RegistrationReporter.
func (r *Registry) Registrations() []registry.RegistrationState {
	r.mu.Lock()
	regs := make([]*registration, 0, len(r.regs))
	for _, g := range r.regs {
		regs = append(regs, g)
	}
	r.mu.Unlock()
	out := make([]registry.RegistrationState, 0, len(regs))
	for _, g := range regs {
		out = append(out, g.state())
	}
	registry.SortRegistrations(out)
	return out
}
