package zk

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// dialer dials for an owned connection and remembers what it dialled, so
// that Close can cut a connection go-zookeeper is stuck on: its handshake
// waits up to ten times the receive timeout for a server that accepted the
// TCP connection but does not answer (one that is starting, or partitioned).
type dialer struct {
	tls *tls.Config // nil: plain TCP

	mu     sync.Mutex // guards the fields below
	conns  map[*trackedConn]struct{}
	closed bool
}

func newDialer() *dialer { return &dialer{conns: make(map[*trackedConn]struct{})} }

// dial implements gozk.Dialer.
func (d *dialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		if c, err = handshake(c, address, timeout, d.tls); err != nil {
			return nil, err
		}
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

// closeAll closes every connection still open and refuses new ones.
func (d *dialer) closeAll() {
	d.mu.Lock()
	conns := d.conns
	d.conns, d.closed = nil, true
	d.mu.Unlock()
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
