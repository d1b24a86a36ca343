package consul

import (
	"context"
	"errors"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/registry"
)

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
