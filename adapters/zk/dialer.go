package zk

import (
	"net"
	"sync"
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

// dialer dials for an owned connection and remembers what it dialled, so
// that Close can cut a connection go-zookeeper is stuck on: its handshake
// waits up to ten times the receive timeout for a server that accepted the
// TCP connection but does not answer (one that is starting, or partitioned).
type dialer struct {
	quit chan struct{} // closed by closeAll

	mu     sync.Mutex // guards the fields below
	conns  map[*trackedConn]struct{}
	closed bool
	last   time.Time     // when the last attempt started
	gap    time.Duration // pause before the next attempt; 0 after a session
}

func newDialer() *dialer {
	return &dialer{conns: make(map[*trackedConn]struct{}), quit: make(chan struct{})}
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
	t := &trackedConn{Conn: c, d: d}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	d.conns[t] = struct{}{}
	return t, nil
}

// connected resets the pacing: the next outage starts from dialMinGap.
func (d *dialer) connected() {
	d.mu.Lock()
	d.gap = 0
	d.mu.Unlock()
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

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	d *dialer
}

func (c *trackedConn) Close() error {
	c.d.mu.Lock()
	delete(c.d.conns, c)
	c.d.mu.Unlock()
	return c.Conn.Close()
}

// hostList is a gozk.HostProvider that cycles through the servers without
// ever asking go-zookeeper to pause (the dialer paces instead).
type hostList struct {
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
	return s, false
}

func (h *hostList) Connected() {}
