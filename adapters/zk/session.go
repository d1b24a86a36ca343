package zk

import (
	"fmt"
	"time"

	gozk "github.com/go-zookeeper/zk"
)

// pollInterval is how often the state of a connection passed in
// Config.Conn is read: its session events go to its owner, not to us.
const pollInterval = 250 * time.Millisecond

// onEvent is go-zookeeper's event callback for an owned connection. It runs
// on go-zookeeper's goroutines and must not block. (The connection's event
// channel drops events when full, the callback never does.)
func (r *Registry) onEvent(ev gozk.Event) {
	if ev.Type != gozk.EventSession {
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// monitor follows the connection's session: when a session is regained it
// kicks every keeper (and, if the session is a new one, marks the
// registrations lost: ZooKeeper deleted the old session's nodes); every
// change of state wakes the watchers, which report a lost connection as a
// transient error and confirm their state when it is back.
func (r *Registry) monitor() {
	defer r.wg.Done()
	var poll <-chan time.Time
	if !r.owned {
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		poll = t.C
	}
	session := r.conn.SessionID()
	connected := r.conn.State() == gozk.StateHasSession
	for {
		select {
		case <-r.wake:
		case <-poll:
		case <-r.ctx.Done():
			return
		}
		state, id := r.conn.State(), r.conn.SessionID()
		has := state == gozk.StateHasSession
		changed := has != connected || has && id != session
		switch {
		case has && session != 0 && id != session:
			r.log.Warn("zookeeper: new session, the previous one expired; re-creating registrations",
				"old_session", fmt.Sprintf("%#x", session), "session", fmt.Sprintf("%#x", id))
			r.lost(fmt.Errorf("session %#x expired: %w", session, gozk.ErrSessionExpired))
		case has && !connected:
			r.log.Info("zookeeper: connected", "session", fmt.Sprintf("%#x", id), "server", r.conn.Server())
			r.lost(nil)
		case state == gozk.StateExpired:
			r.log.Warn("zookeeper: session expired", "session", fmt.Sprintf("%#x", session))
			r.lost(fmt.Errorf("session %#x: %w", session, gozk.ErrSessionExpired))
		case !has && connected:
			r.log.Warn("zookeeper: connection lost", "state", state.String(), "session", fmt.Sprintf("%#x", session))
		}
		if has {
			session = id
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
