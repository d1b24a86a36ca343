package zk

import (
	"fmt"
	"time"

	gozk "github.com/go-zookeeper/zk"
)

// pollInterval is how often the state of a connection passed in
// Config.Conn is read: its session events go to its owner, not to us.
const pollInterval = 250 * time.Millisecond

// monitor follows the connection's session: when a session is regained it
// kicks every keeper (and, if the session is a new one, marks the
// registrations lost: ZooKeeper deleted the old session's nodes); every
// change of state wakes the watchers, which report a lost connection as a
// transient error and confirm their state when it is back. Without a session
// for longer than Config.SessionTimeout, the registrations are marked lost
// too: the server has expired the session, whether or not it can say so. An
// owned connection whose handshakes keep being refused is replaced (see
// refusalsBeforeProbe).
func (r *Registry) monitor() {
	defer r.wg.Done()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	cs := r.cur.Load()
	session := cs.conn.SessionID()
	connected := cs.conn.State() == gozk.StateHasSession
	epoch := cs.sessions.Load()
	var (
		downSince time.Time // when the session was last seen lost
		expired   bool      // registrations marked lost for this outage
		lastProbe time.Time
	)
	for {
		select {
		case <-r.wake:
		case <-poll.C: // also times the session timeout and the probes
		case <-r.ctx.Done():
			return
		}
		if cs.owned && cs.refused.Load() >= refusalsBeforeProbe && time.Since(lastProbe) >= probeEvery &&
			cs.conn.State() != gozk.StateHasSession {
			lastProbe = time.Now()
			if p := r.probe(cs); p != nil {
				r.replace(cs, p)
				cs, expired = p, true
				session, connected, epoch = p.conn.SessionID(), true, p.sessions.Load()
				continue
			}
			if r.ctx.Err() != nil {
				return
			}
		}
		state, id := cs.conn.State(), cs.conn.SessionID()
		has := state == gozk.StateHasSession
		if e := cs.sessions.Load(); has && connected && e != epoch {
			connected = false // reconnected between two looks: confirm everything
		}
		if has {
			epoch = cs.sessions.Load()
		}
		changed := has != connected || has && id != session
		switch {
		case has && session != 0 && id != session:
			r.log.Warn("zookeeper: new session, the previous one expired; re-creating registrations",
				"old_session", fmt.Sprintf("%#x", session), "session", fmt.Sprintf("%#x", id))
			r.lost(fmt.Errorf("session %#x expired: %w", session, gozk.ErrSessionExpired))
		case has && !connected:
			r.log.Info("zookeeper: connected", "session", fmt.Sprintf("%#x", id), "server", cs.conn.Server())
			r.lost(nil)
		case state == gozk.StateExpired:
			r.log.Warn("zookeeper: session expired", "session", fmt.Sprintf("%#x", session))
			r.lost(fmt.Errorf("session %#x: %w", session, gozk.ErrSessionExpired))
			expired = true
		case !has && connected:
			r.log.Warn("zookeeper: connection lost", "state", state.String(), "session", fmt.Sprintf("%#x", session))
		}
		if has {
			session, downSince, expired = id, time.Time{}, false
		} else if downSince.IsZero() {
			downSince = time.Now()
		}
		if !has && !expired && time.Since(downSince) > r.cfg.SessionTimeout {
			expired = true
			r.lost(fmt.Errorf("no session for %v, longer than the session timeout: the server has expired session %#x: %w",
				time.Since(downSince).Round(time.Millisecond), session, gozk.ErrSessionExpired))
		}
		connected = has
		if changed {
			r.notifySession()
		}
	}
}

// notifySession wakes everything waiting on sessionChanged.
func (r *Registry) notifySession() {
	r.mu.Lock()
	close(r.session)
	r.session = make(chan struct{})
	r.mu.Unlock()
}

// sessionChanged returns a channel closed at the next change of the
// connection's session state.
func (r *Registry) sessionChanged() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.session
}
