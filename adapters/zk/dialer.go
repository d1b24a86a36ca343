package zk

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Dial pacing: go-zookeeper waits a whole second before every new round of
// its server list, so after an outage a single-server client would come back
// up to a second late. Its host provider is told never to wait (hostList) and
// the dialer paces the attempts itself, from dialMinGap doubling up to
// dialMaxGap, reset when a session is established: the Registry is back
// within dialMaxGap plus a handshake of the server answering again, whatever
// the outage's length.
const (
	dialMinGap = 50 * time.Millisecond
	dialMaxGap = 400 * time.Millisecond
)

// Handshake bounds: a ZooKeeper server that is starting accepts TCP
// connections before it serves them, and never answers a handshake sent
// then; go-zookeeper would wait ten times its receive timeout (about 66 s
// with a 10 s session) before trying again. The dialer cuts a handshake
// that has not been answered after handshakeMin, doubling the bound after
// each handshake that failed (a server that is merely slow still gets in)
// up to handshakeMax, and resets it once a session is established.
const (
	handshakeMin = time.Second
	handshakeMax = 8 * time.Second
)

// dialer dials for an owned connection and remembers what it dialled, so
// that Close can cut a connection go-zookeeper is stuck on: its handshake
// waits up to ten times the receive timeout for a server that accepted the
// TCP connection but does not answer (one that is starting, or partitioned).
type dialer struct {
	tls  *tls.Config   // nil: plain TCP
	quit chan struct{} // closed by closeAll

	mu     sync.Mutex // guards the fields below
	conns  map[*trackedConn]struct{}
	closed bool
	last   time.Time     // when the last attempt started
	gap    time.Duration // pause before the next attempt; 0 after a session
	hs     time.Duration // bound of the next handshake

	// watched is set once a watch was set on the connection: only then does
	// go-zookeeper send setWatches after a reconnection (see settleWait).
	watched atomic.Bool
	settle  time.Duration // the bound of that wait for this connection
}

func newDialer(sessionTimeout time.Duration) *dialer {
	return &dialer{conns: make(map[*trackedConn]struct{}), quit: make(chan struct{}), hs: handshakeMin,
		settle: min(settleWait, sessionTimeout/4)}
}

// dial implements gozk.Dialer.
func (d *dialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	wait := time.Until(d.last.Add(d.gap))
	d.gap = min(max(2*d.gap, dialMinGap), dialMaxGap)
	d.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.quit:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
	d.mu.Lock()
	d.last = time.Now()
	d.mu.Unlock()
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		if c, err = handshake(c, address, timeout, d.tls); err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t := &trackedConn{Conn: c, d: d, hs: d.hs, br: bufio.NewReaderSize(c, readBuffer), rewatched: make(chan struct{})}
	if d.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	d.conns[t] = struct{}{}
	return t, nil
}

// connected resets the pacing and the handshake bound: the next outage
// starts from dialMinGap and handshakeMin.
func (d *dialer) connected() {
	d.mu.Lock()
	d.gap, d.hs = 0, handshakeMin
	d.mu.Unlock()
}

// isClosed reports whether closeAll has been called.
func (d *dialer) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// closeAll closes every connection still open and refuses new ones.
func (d *dialer) closeAll() {
	d.mu.Lock()
	conns := d.conns
	wasClosed := d.closed
	d.conns, d.closed = nil, true
	d.mu.Unlock()
	if !wasClosed {
		close(d.quit)
	}
	for c := range conns {
		c.Conn.Close()
	}
}

// readBuffer is the read buffer of a connection: go-zookeeper reads each
// answer with two reads (length, then body); buffered, a burst of pipelined
// answers (a large service read) costs a few system calls instead of two
// per answer.
const readBuffer = 64 << 10

// trackedConn forgets itself when closed, bounds its handshake and buffers
// its reads.
type trackedConn struct {
	net.Conn
	d  *dialer
	hs time.Duration // the handshake's bound
	br *bufio.Reader // only go-zookeeper's receive loop reads

	mu       sync.Mutex // guards the fields below
	answered bool       // the server has sent something
	done     bool       // go-zookeeper cleared the handshake's deadline
	recv     bool       // then set one again: its receive loop runs
	settled  bool       // the receive loop may read

	rewatched chan struct{} // closed when go-zookeeper has sent its setWatches
	once      sync.Once
}

// opSetWatches is go-zookeeper's request re-arming its watches after a
// reconnection.
const opSetWatches = 101

// settleWait bounds how long the receive loop's first read after a
// reconnection waits for the setWatches request. go-zookeeper v1.0.4 reads
// its last zxid to build that request on one goroutine while its receive
// loop may already be storing the zxid of an answer (a data race: the
// Registry sends requests the moment a session is back). Holding the
// receive loop until the setWatches request is written orders the two. A
// connection without watches sends none (and reads no zxid): the wait is
// made only on connections that had a watch set, and it stays well below
// go-zookeeper's receive timeout (a quarter of the session timeout, 1 s at
// most). The request is normally written within milliseconds; the bound is
// reached only when go-zookeeper had no watch left to re-arm (then it
// delays the first answer after that reconnection).
const settleWait = time.Second

// Write notes the setWatches request: [length][xid][opcode]...
func (c *trackedConn) Write(p []byte) (int, error) {
	if len(p) >= 12 && binary.BigEndian.Uint32(p[8:12]) == opSetWatches {
		c.once.Do(func() { close(c.rewatched) })
	}
	return c.Conn.Write(p)
}

// SetReadDeadline caps the deadline go-zookeeper sets for the handshake's
// answer at hs from now; later deadlines pass through.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	answered := c.answered
	switch {
	case answered && t.IsZero():
		c.done = true // the handshake's answer is being read
	case c.done && !t.IsZero():
		c.recv = true // the receive loop's first deadline
	}
	c.mu.Unlock()
	if limit := time.Now().Add(c.hs); !answered && !t.IsZero() && t.After(limit) {
		t = limit
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	wait := c.recv && !c.settled && c.d.watched.Load()
	c.settled = c.settled || c.recv
	c.mu.Unlock()
	if wait {
		t := time.NewTimer(c.d.settle)
		select {
		case <-c.rewatched:
		case <-t.C:
		}
		t.Stop()
	}
	n, err := c.br.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.answered = true
		c.mu.Unlock()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.mu.Lock()
	answered := c.answered
	c.mu.Unlock()
	c.d.mu.Lock()
	delete(c.d.conns, c)
	if !answered { // a failed handshake: give the next one longer
		c.d.hs = min(2*c.d.hs, handshakeMax)
	}
	c.d.mu.Unlock()
	return c.Conn.Close()
}

// hostList is a gozk.HostProvider that cycles through the servers without
// ever asking go-zookeeper to pause (the dialer paces instead).
type hostList struct {
	// d is the connection's dialer. Once it is closed Next says "retry
	// start", the only point where go-zookeeper's connect loop looks at its
	// quit channel: without it, a closed connection whose server cannot be
	// reached would spin in that loop forever (the dialer refuses at once).
	d *dialer

	mu      sync.Mutex // guards the fields below
	servers []string
	next    int
}

func (h *hostList) Init(servers []string) error {
	h.servers = servers
	return nil
}

func (h *hostList) Len() int { return len(h.servers) }

func (h *hostList) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.servers[h.next%len(h.servers)]
	h.next++
	return s, h.d != nil && h.d.isClosed()
}

func (h *hostList) Connected() {}
