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
	session := time.NewTimer(r.cfg.RequestTimeout)
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
	r.notifySession()
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
