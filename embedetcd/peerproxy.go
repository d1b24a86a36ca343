package embedetcd

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/textproto"
	"sync"
	"time"
)

// peerProxy forwards one member's peer port. It reads the first HTTP
// request of each connection to learn which member dialed (etcd's raft
// transport sends X-Server-From with every stream and pipeline request), so
// that a partition can cut the links of one member in both directions while
// the others keep talking.
type peerProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex          // guards the fields below
	blocked map[string]bool     // origins refused ("*": every origin)
	conns   map[net.Conn]string // open downstream conns -> origin ("" unknown)
	closed  bool
}

func listenPeerProxy(addr, target string) (*peerProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &peerProxy{ln: ln, target: target, blocked: map[string]bool{}, conns: map[net.Conn]string{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// block refuses connections from origin ("*": all) and severs the open
// ones, and those of unknown origin (a lease forward, a version probe).
func (p *peerProxy) block(origin string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked[origin] = true
	for c, o := range p.conns {
		if origin == "*" || o == origin || o == "" {
			c.Close()
		}
	}
}

func (p *peerProxy) unblockAll() {
	p.mu.Lock()
	p.blocked = map[string]bool{}
	p.mu.Unlock()
}

func (p *peerProxy) refused(origin string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked["*"] || (origin != "" && p.blocked[origin])
}

func (p *peerProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *peerProxy) track(c net.Conn, origin string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = origin
	return true
}

func (p *peerProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *peerProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *peerProxy) serve(down net.Conn) {
	defer p.wg.Done()
	if !p.track(down, "") {
		down.Close()
		return
	}
	defer p.untrack(down)
	br := bufio.NewReaderSize(down, 64<<10)
	origin := sniffOrigin(down, br)
	if p.refused(origin) {
		return
	}
	p.mu.Lock()
	if _, open := p.conns[down]; !open {
		p.mu.Unlock()
		return
	}
	p.conns[down] = origin
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up, origin) {
		up.Close()
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.Close(); down.Close(); done <- struct{}{} }()
	go func() { io.Copy(down, up); up.Close(); down.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// sniffOrigin peeks the first request's headers (without consuming them)
// and returns its X-Server-From, or "" when there is none.
func sniffOrigin(c net.Conn, br *bufio.Reader) string {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for br.Buffered() < br.Size() {
		// Wait for at least one more byte, then look at all there is.
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return ""
		}
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b[:i+4])))
			if _, err := tp.ReadLine(); err != nil {
				return ""
			}
			h, _ := tp.ReadMIMEHeader()
			return h.Get("X-Server-From")
		}
	}
	return ""
}
