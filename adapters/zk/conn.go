package zk

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	gozk "github.com/go-zookeeper/zk"
)

// History changes. go-zookeeper forgets the highest zxid it has seen only
// when a server tells it its session expired. A server that was wiped, or
// restored from a backup older than what the client has seen, never says so:
// it refuses the handshake ("has seen zxid 0x… our last zxid is 0x…") and
// closes the connection, and go-zookeeper retries with the same zxid
// forever. The Registry counts handshakes refused in a row on its owned
// connection; after refusalsBeforeProbe of them it dials a probe connection
// (which has seen nothing). If the probe gets a session and the old
// connection is refused again after that -- the server is up and answers
// newcomers, so the refusal is about the old connection's history -- the
// probe replaces it: every registration is re-created and every watch
// re-read on the new connection. If the old connection gets its session
// instead (the server was only starting), the probe is closed.
const (
	refusalsBeforeProbe = 2
	// probeConfirm bounds how long a probe with a session waits for the old
	// connection's next attempt; past it the probe replaces the old
	// connection if that still has no session.
	probeConfirm = 3 * time.Second
	// probeEvery spaces probes that did not get a session.
	probeEvery = time.Second
)

// connState is one go-zookeeper connection of the Registry and what its
// events said.
type connState struct {
	conn   *gozk.Conn
	events <-chan gozk.Event // owned: closed when its goroutine ends
	dialer *dialer           // owned only
	owned  bool

	handshake atomic.Bool  // TCP connected, session not yet established
	refused   atomic.Int64 // handshakes that failed in a row
	// sessions counts the sessions established (owned connections): a
	// reconnection too quick for a reader of State to notice still changes
	// it, and what the server holds must then be confirmed again.
	sessions atomic.Int64

	authMu sync.Mutex // serializes AddAuth; guards authed
	authed bool
}

// onEvent is go-zookeeper's event callback for an owned connection. It runs
// on go-zookeeper's goroutines and must not block. (The connection's event
// channel drops events when full, the callback never does.)
func (cs *connState) onEvent(r *Registry, ev gozk.Event) {
	if ev.Type != gozk.EventSession {
		r.hub.push(cs, ev)
		return
	}
	switch ev.State {
	case gozk.StateConnected:
		cs.handshake.Store(true)
	case gozk.StateHasSession:
		cs.handshake.Store(false)
		cs.refused.Store(0)
		cs.sessions.Add(1)
		cs.dialer.connected()
	case gozk.StateExpired: // the server answered: go-zookeeper starts afresh
		cs.handshake.Store(false)
		cs.refused.Store(0)
	case gozk.StateDisconnected, gozk.StateConnecting:
		if cs.handshake.Swap(false) {
			cs.refused.Add(1)
		}
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	r.hub.kick()
}

// dial starts an owned connection (go-zookeeper connects in the background).
func (r *Registry) dial() (*connState, error) {
	cs := &connState{dialer: newDialer(r.cfg.SessionTimeout), owned: true}
	cs.dialer.tls = r.cfg.TLS
	conn, events, err := gozk.Connect(r.cfg.Servers, r.cfg.SessionTimeout,
		gozk.WithDialer(cs.dialer.dial), gozk.WithHostProvider(&hostList{d: cs.dialer}),
		gozk.WithLogger(zkLogger{r.log}), gozk.WithEventCallback(func(ev gozk.Event) { cs.onEvent(r, ev) }))
	if err != nil {
		return nil, err
	}
	cs.conn, cs.events = conn, events
	return cs, nil
}

// shut closes an owned connection and waits for its goroutine, at most
// closeWait.
func (cs *connState) shut(r *Registry) {
	cs.conn.Close()      // ends the session (waits up to 1 s for the server's answer)
	cs.dialer.closeAll() // unblocks a handshake go-zookeeper may be stuck in
	timeout := time.NewTimer(closeWait)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-cs.events:
			if !ok {
				return
			}
		case <-timeout.C:
			r.log.Warn("zookeeper: connection goroutine still running after close", "wait", closeWait)
			return
		}
	}
}

// watching notes that a watch is about to be set on the current connection
// (see settleWait).
func (r *Registry) watching() {
	if cs := r.cur.Load(); cs.owned {
		cs.dialer.watched.Store(true)
	}
}

// zconn returns the current connection.
func (r *Registry) zconn() *gozk.Conn { return r.cur.Load().conn }

// probe runs on the monitor when the owned connection cs keeps being
// refused: it dials a fresh connection and returns it if it should replace
// cs (see refusalsBeforeProbe), or nil.
func (r *Registry) probe(cs *connState) *connState {
	p, err := r.dial()
	if err != nil {
		return nil
	}
	adopt := false
	defer func() {
		if !adopt {
			r.retireConn(p)
		}
	}()
	session := time.NewTimer(r.cfg.Timeout)
	defer session.Stop()
	tick := time.NewTicker(sessionPoll)
	defer tick.Stop()
	for p.conn.State() != gozk.StateHasSession {
		select {
		case <-tick.C:
		case <-session.C:
			return nil
		case <-r.ctx.Done():
			return nil
		}
		if cs.conn.State() == gozk.StateHasSession {
			return nil
		}
	}
	refused := cs.refused.Load()
	confirm := time.NewTimer(probeConfirm)
	defer confirm.Stop()
	for {
		switch {
		case cs.conn.State() == gozk.StateHasSession:
			return nil
		case cs.refused.Load() > refused:
			adopt = true
			return p
		}
		select {
		case <-tick.C:
		case <-confirm.C:
			adopt = cs.conn.State() != gozk.StateHasSession
			if adopt {
				return p
			}
			return nil
		case <-r.ctx.Done():
			return nil
		}
	}
}

// replace makes p the current connection and retires cs: its session is
// refused by a server whose history changed, so every registration is lost.
func (r *Registry) replace(cs, p *connState) {
	r.log.Warn("zookeeper: the server refuses this connection's session (its history changed: wiped or restored from a backup); replaced it with a new connection",
		"refused", cs.refused.Load(), "session", fmt.Sprintf("%#x", p.conn.SessionID()), "server", p.conn.Server())
	r.cur.Store(p)
	r.retireConn(cs)
	r.lost(fmt.Errorf("connection replaced: the server refused session %#x (history changed): %w", cs.conn.SessionID(), gozk.ErrSessionExpired))
	r.session.Fire()
	r.hub.kick()
}

// retireConn closes an owned connection in the background; Close waits.
func (r *Registry) retireConn(cs *connState) {
	r.wg.Add(1) // the monitor (in wg) calls this: never after Close's Wait
	go func() {
		defer r.wg.Done()
		cs.shut(r)
	}()
}

// pollInterval is how often the state of a connection passed in
// Config.Client is read: its session events go to its owner, not to us.
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
			r.session.Fire()
		}
	}
}
