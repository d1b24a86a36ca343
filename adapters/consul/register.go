package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// registration is one instance this registry keeps alive.
type registration struct {
	in  *registry.Instance // a private copy
	sid string             // the Consul service ID
	asr *consulapi.AgentServiceRegistration
	ttl time.Duration // of its check

	// Set by start, used by stop: only by the holder of the instance ID's
	// lock (Register, Deregister).
	cancel context.CancelFunc
	done   chan struct{}

	// Guarded by Registry.mu.
	live     bool
	since    time.Time
	attempts int
	lastErr  error
}

// checkID is the ID of a registration's TTL check, the one Consul gives a
// service's only check by default and Kratos' contrib registry uses.
func checkID(sid string) string { return "service:" + sid }

// qualifiedID is the Consul service ID of an instance whose own ID is taken
// on the agent by another service.
func qualifiedID(name, id string) string { return name + ":" + id }

// Register implements registry.Registry. It writes the service with a TTL
// check already passing, so the instance is visible at once, and starts its
// heartbeat. Registering the same instance again replaces the definition.
func (r *Registry) Register(ctx context.Context, in *registry.Instance) error {
	return r.register(ctx, in, 0)
}

// RegisterTTL implements registry.TTLRegistrar: Register with a check TTL
// of ttl instead of Config.TTL (the heartbeat runs every ttl/3). ttl <= 0
// means Config.TTL; a ttl below MinTTL is ErrInvalid. An instance already
// registered here keeps its TTL.
func (r *Registry) RegisterTTL(ctx context.Context, in *registry.Instance, ttl time.Duration) error {
	if ttl > 0 && ttl < MinTTL {
		return fmt.Errorf("consul: register: %w: TTL %v is shorter than %v", registry.ErrInvalid, ttl, MinTTL)
	}
	return r.register(ctx, in, ttl)
}

// register registers in with a check TTL of ttl (0: Config.TTL) unless it
// is registered already.
func (r *Registry) register(ctx context.Context, in *registry.Instance, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = r.cfg.TTL
	}
	if r.isClosed() {
		return errClosed("register")
	}
	if err := registry.Validate(in); err != nil {
		return fmt.Errorf("consul: register: %w", err)
	}
	in = in.Clone()
	// Check Consul's limits before anything else: the service ID chosen
	// below changes nothing about what fits.
	if _, err := encode(in, in.ID); err != nil {
		return fmt.Errorf("consul: register: %w", err)
	}
	unlock, err := r.locks.Lock(ctx, nil, in.ID)
	if err != nil {
		return fmt.Errorf("consul: register %s: %w", in, classify(err))
	}
	defer unlock()

	r.mu.Lock()
	old := r.regs[in.Key()]
	r.mu.Unlock()
	var sid string
	if old != nil {
		sid, ttl = old.sid, old.ttl
	} else if sid, err = r.serviceID(ctx, in); err != nil {
		return fmt.Errorf("consul: register %s: %w", in, err)
	}
	asr, err := r.definition(in, sid, ttl)
	if err != nil {
		return fmt.Errorf("consul: register: %w", err)
	}
	if old != nil {
		old.stop() // its re-registration must not overwrite the new definition
	}
	if err := r.write(ctx, asr); err != nil {
		if old != nil {
			r.mu.Lock()
			r.startLocked(old) // keep the previous registration alive
			r.mu.Unlock()
		}
		return fmt.Errorf("consul: register %s: %w", in, err)
	}
	reg := &registration{in: in, sid: sid, asr: asr, ttl: ttl, live: true, since: time.Now()}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed("register")
	}
	r.regs[in.Key()] = reg
	r.bySID[sid] = reg
	r.startLocked(reg)
	r.mu.Unlock()
	r.log.Debug("registered", "instance", in.String(), "service_id", sid)
	return nil
}

// definition returns the agent registration of in under sid, with its TTL
// check (of ttl) initially passing.
func (r *Registry) definition(in *registry.Instance, sid string, ttl time.Duration) (*consulapi.AgentServiceRegistration, error) {
	asr, err := encode(in, sid)
	if err != nil {
		return nil, err
	}
	asr.Check = &consulapi.AgentServiceCheck{
		CheckID:                        checkID(sid),
		Name:                           "regchain heartbeat",
		TTL:                            ttl.String(),
		Status:                         consulapi.HealthPassing,
		DeregisterCriticalServiceAfter: r.cfg.DeregisterCriticalServiceAfter.String(),
	}
	return asr, nil
}

// serviceID picks the Consul service ID of a new registration: the instance
// ID, as Kratos' contrib registry does, unless another service holds that ID
// on the agent (one agent has one service ID namespace; regchain's key is
// name and ID); then name:id, with the instance ID kept in Meta.
func (r *Registry) serviceID(ctx context.Context, in *registry.Instance) (string, error) {
	r.mu.Lock()
	holder := r.bySID[in.ID]
	r.mu.Unlock()
	if holder != nil { // one of ours, of another service: the same key would be old
		return qualifiedID(in.Name, in.ID), nil
	}
	svc, _, err := r.client.Agent().Service(in.ID, (&consulapi.QueryOptions{}).WithContext(ctx))
	switch {
	case err == nil && svc != nil && svc.Service != in.Name:
		return qualifiedID(in.Name, in.ID), nil
	case err == nil, isStatus(err, http.StatusNotFound):
		return in.ID, nil
	case isStatus(err, http.StatusForbidden):
		// Held by a service the token may not read (or the token is bad,
		// which the write reports): leave it alone.
		return qualifiedID(in.Name, in.ID), nil
	default:
		return "", classify(err)
	}
}

// write registers asr with the local agent and passes its check.
func (r *Registry) write(ctx context.Context, asr *consulapi.AgentServiceRegistration) error {
	opts := consulapi.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.client.Agent().ServiceRegisterOpts(asr, opts); err != nil {
		return classify(err)
	}
	// A re-registration keeps a check's previous status: pass it explicitly.
	if err := r.pass(ctx, asr.ID); err != nil {
		return classify(err)
	}
	return nil
}

// pass sets the TTL check of service sid to passing.
func (r *Registry) pass(ctx context.Context, sid string) error {
	return r.client.Agent().UpdateTTLOpts(checkID(sid), "", consulapi.HealthPassing, (&consulapi.QueryOptions{}).WithContext(ctx))
}

// Deregister implements registry.Registry. It stops the heartbeat and
// removes the service from the agent. For an instance this registry does not
// hold, it removes what the agent holds under the instance's name and ID.
func (r *Registry) Deregister(ctx context.Context, in *registry.Instance) error {
	if r.isClosed() {
		return errClosed("deregister")
	}
	if in == nil {
		return fmt.Errorf("consul: deregister: %w: nil instance", registry.ErrInvalid)
	}
	if err := registry.ValidateName(in.Name); err != nil {
		return fmt.Errorf("consul: deregister: %w", err)
	}
	if err := registry.ValidateID(in.ID); err != nil {
		return fmt.Errorf("consul: deregister: %w", err)
	}
	key := in.Key()
	unlock, err := r.locks.Lock(ctx, nil, in.ID)
	if err != nil {
		return fmt.Errorf("consul: deregister %s: %w", key, classify(err))
	}
	defer unlock()

	r.mu.Lock()
	reg := r.regs[key]
	if reg != nil {
		delete(r.regs, key)
		delete(r.bySID, reg.sid)
	}
	r.mu.Unlock()
	if reg != nil {
		reg.stop()
		if err := r.deregisterSID(ctx, reg.sid); err != nil {
			return fmt.Errorf("consul: deregister %s: %w", key, err)
		}
		r.log.Debug("deregistered", "instance", key, "service_id", reg.sid)
		return nil
	}
	svc, _, err := r.client.Agent().Service(in.ID, (&consulapi.QueryOptions{}).WithContext(ctx))
	switch {
	case err == nil && svc != nil && svc.Service == in.Name:
		if err := r.deregisterSID(ctx, in.ID); err != nil {
			return fmt.Errorf("consul: deregister %s: %w", key, err)
		}
	case err == nil, isStatus(err, http.StatusNotFound), isStatus(err, http.StatusForbidden):
	default:
		return fmt.Errorf("consul: deregister %s: %w", key, classify(err))
	}
	if err := r.deregisterSID(ctx, qualifiedID(in.Name, in.ID)); err != nil {
		return fmt.Errorf("consul: deregister %s: %w", key, err)
	}
	return nil
}

// deregisterSID removes service sid from the agent; an unknown one is fine.
func (r *Registry) deregisterSID(ctx context.Context, sid string) error {
	err := r.client.Agent().ServiceDeregisterOpts(sid, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err == nil || isStatus(err, http.StatusNotFound) {
		return nil
	}
	return classify(err)
}

// startLocked starts reg's heartbeat unless the registry is closed. r.mu is
// held.
func (r *Registry) startLocked(reg *registration) {
	if r.closed {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	reg.cancel, reg.done = cancel, make(chan struct{})
	r.wg.Add(1)
	go r.keepalive(ctx, reg, reg.done)
}

// stop stops reg's heartbeat and waits for it to return.
func (reg *registration) stop() {
	if reg.cancel == nil {
		return
	}
	reg.cancel()
	<-reg.done
	reg.cancel, reg.done = nil, nil
}

// keepalive passes reg's TTL check every TTL/3. When the agent answers that
// the check is unknown (the agent restarted and lost its state, an operator
// or the agent's reaper removed the service) it registers the service again;
// any failure is retried with capped backoff and jitter until ctx ends. A
// failure because the agent could not be reached is retried as soon as the
// agent answers again (see agentProbeEvery), without waiting out the
// backoff.
func (r *Registry) keepalive(ctx context.Context, reg *registration, done chan struct{}) {
	defer r.wg.Done()
	defer close(done)
	interval := reg.ttl / 3
	// A slow answer is not a lost registration: give each attempt up to
	// half the TTL (the check passes for a whole TTL after the last beat).
	timeout := min(reg.ttl/2, r.cfg.Timeout)
	b := backoff.Backoff{Base: min(100*time.Millisecond, interval), Max: interval}
	timer := time.NewTimer(interval)
	defer timer.Stop()
	var back <-chan struct{} // closed when the agent answers again; nil while it does
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-back:
		}
		back = nil
		err := r.beat(ctx, timeout, func(ctx context.Context) error { return classify(r.pass(ctx, reg.sid)) })
		if err != nil && ctx.Err() == nil && isStatus(err, http.StatusNotFound) {
			r.failed(reg, err)
			err = r.beat(ctx, timeout, func(ctx context.Context) error { return r.write(ctx, reg.asr) })
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.failed(reg, err)
			if unreachable(err) {
				back = r.agentBack()
			}
			timer.Reset(b.Next())
			continue
		}
		r.alive(reg)
		b.Reset()
		timer.Reset(interval)
	}
}

// maxBeats bounds the heartbeats (and the re-registrations they make) in
// flight at once: each holds a connection to the agent, and the agent caps
// connections per client IP (limits.http_max_conns_per_client). Heartbeats
// of many registrations fall due together (a loaded process runs its timers
// late); they then wait their turn, each taking milliseconds, well within
// the TTL's slack.
const maxBeats = 4

// beat is attempt for a keepalive: it waits for one of the maxBeats slots
// (within ctx) before it runs f.
func (r *Registry) beat(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	select {
	case r.beats <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.beats }()
	return r.attempt(ctx, timeout, f)
}

// attempt runs f with a ctx bounded by timeout.
func (r *Registry) attempt(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return f(ctx)
}

// alive records a successful heartbeat or re-registration.
func (r *Registry) alive(reg *registration) {
	r.mu.Lock()
	was, attempts, down := reg.live, reg.attempts, time.Since(reg.since)
	if !reg.live {
		reg.live, reg.since = true, time.Now()
	}
	reg.attempts, reg.lastErr = 0, nil
	r.mu.Unlock()
	if !was {
		r.log.Info("registration restored", "instance", reg.in.String(), "service_id", reg.sid, "attempts", attempts, "down", down)
	}
}

// failed records a failed heartbeat or re-registration.
func (r *Registry) failed(reg *registration, err error) {
	r.mu.Lock()
	was := reg.live
	if reg.live {
		reg.live, reg.since = false, time.Now()
	}
	reg.attempts++
	reg.lastErr = err
	r.mu.Unlock()
	if was {
		r.log.Warn("heartbeat failed, retrying", "instance", reg.in.String(), "service_id", reg.sid, "err", err)
	}
}

// Registrations implements registry.RegistrationReporter. After Close it
// returns nothing.
func (r *Registry) Registrations() []registry.RegistrationState {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	out := make([]registry.RegistrationState, 0, len(r.regs))
	for _, reg := range r.regs {
		out = append(out, registry.RegistrationState{
			Instance:  reg.in.Clone(),
			Live:      reg.live,
			Since:     reg.since,
			Attempts:  reg.attempts,
			LastError: reg.lastErr,
		})
	}
	r.mu.Unlock()
	registry.SortRegistrations(out)
	return out
}

var _ registry.Validator = (*Registry)(nil)

// ValidateInstance implements registry.Validator: it returns an error
// wrapping registry.ErrInvalid when Register would refuse in (registry
// validation, or metadata that does not fit Consul's Meta limits even
// spilled), without I/O. The encoding reserves the instance-ID slot, so
// the answer does not depend on the Consul service ID Register picks.
func (r *Registry) ValidateInstance(in *registry.Instance) error {
	if err := registry.Validate(in); err != nil {
		return err
	}
	_, err := encode(in, in.ID)
	return err
}

// agentProbeEvery is how often an agent that stopped answering is asked
// again (GET /v1/status/leader: constant cost, no ACL needed). Heartbeats
// that failed wait for its answer rather than for their backoff, so a
// registration is back within about this much of the agent (and its
// cluster's leader) answering again, whatever the outage's length.
const agentProbeEvery = 100 * time.Millisecond

// reachability follows whether the agent answers. Guarded by Registry.mu.
type reachability struct {
	down    bool          // a heartbeat found the agent unreachable
	probing bool          // the probe goroutine runs
	back    chan struct{} // closed when the agent answers again
}

// agentBack returns a channel closed when the agent is seen answering
// again after failing, and starts the probe that watches for it.
func (r *Registry) agentBack() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reach.back == nil {
		r.reach.back = make(chan struct{})
	}
	r.reach.down = true
	if !r.reach.probing && !r.closed {
		r.reach.probing = true
		r.wg.Add(1)
		go r.probeAgent()
	}
	return r.reach.back
}

// answered records that the agent answered (a probe, or a Ping): every
// heartbeat waiting for it retries at once.
func (r *Registry) answered() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.reach.down {
		return
	}
	r.reach.down = false
	close(r.reach.back)
	r.reach.back = nil
}

// probeAgent asks the agent for the leader every agentProbeEvery until it
// answers with one, or the Registry closes.
func (r *Registry) probeAgent() {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		r.reach.probing = false
		r.mu.Unlock()
	}()
	t := time.NewTicker(agentProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(r.ctx, max(agentProbeEvery, time.Second))
		err := r.ping(ctx)
		cancel()
		if err == nil {
			r.answered()
			return
		}
	}
}

// unreachable reports whether err says the agent could not be reached (no
// answer at all). An agent that answered, even 429 or 5xx, is not waited
// for: its heartbeats keep their own jittered backoff, so that a busy agent
// is not hit by every heartbeat at once.
func unreachable(err error) bool {
	var se consulapi.StatusError
	return errors.Is(err, registry.ErrUnavailable) && !errors.As(err, &se)
}
