package embedetcd

import (
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/harness/freeport"
)

// memberName is the name of the single member.
const memberName = "regchain"

// Server is an embedded single-member etcd.
type Server struct {
	dir       string
	endpoint  string  // the proxy's address, what clients use
	clientURL url.URL // where etcd itself listens
	peerURL   url.URL

	mu    sync.Mutex // guards the fields below
	e     *embed.Etcd
	proxy *faultproxy.Proxy
}

// Start starts etcd with its data in dir on free loopback ports.
func Start(dir string) (*Server, error) {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	s := &Server{
		dir:       dir,
		endpoint:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		clientURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])},
		peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2])},
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// freePort returns a port that stays free across a Stop and Start (see
// internal/harness/freeport).
func freePort() (int, error) { return freeport.TCP() }

// Endpoint returns the client address ("127.0.0.1:port"), stable across
// Stop and Start.
func (s *Server) Endpoint() string { return s.endpoint }

// Proxy returns the proxy between clients and the running etcd, to
// partition them; nil while stopped. A restart makes a new one.
func (s *Server) Proxy() *faultproxy.Proxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proxy
}

// Running reports whether the server is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e != nil
}

// Start starts a stopped server again on the same data dir and ports.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		return nil
	}
	cfg := newConfig(memberName, s.dir, s.clientURL, s.peerURL, s.peerURL)
	cfg.InitialCluster = cfg.Name + "=" + s.peerURL.String()
	e, p, err := startEtcd(cfg, s.endpoint, "server", 30*time.Second)
	if err != nil {
		return err
	}
	s.e, s.proxy = e, p
	return nil
}

// newConfig returns a quiet etcd config for one member on loopback URLs.
func newConfig(name, dir string, client, peer, advPeer url.URL) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{advPeer}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	return cfg
}

// startEtcd starts etcd with cfg, waits up to ready until it serves, and
// puts the client proxy on endpoint in front of it. A port freed by a
// previous run may linger for a moment: binding is retried. what names
// the server in errors.
func startEtcd(cfg *embed.Config, endpoint, what string, ready time.Duration) (*embed.Etcd, *faultproxy.Proxy, error) {
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			last = err
			time.Sleep(20 * time.Millisecond)
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			e.Close()
			return nil, nil, fmt.Errorf("embedetcd: %s: %w", what, err)
		case <-time.After(ready):
			e.Close()
			return nil, nil, fmt.Errorf("embedetcd: %s not ready within %v", what, ready)
		}
		p, err := listenProxy(endpoint, cfg.ListenClientUrls[0].Host)
		if err != nil {
			e.Close()
			return nil, nil, fmt.Errorf("embedetcd: %s proxy: %w", what, err)
		}
		return e, p, nil
	}
	return nil, nil, fmt.Errorf("embedetcd: %s: %w", what, last)
}

// Stop stops the server (its data stays) and leaves no goroutine behind.
// Clients see it down at once: their connections are cut and new ones
// refused until Start.
func (s *Server) Stop() {
	s.mu.Lock()
	e, p := s.e, s.proxy
	s.e, s.proxy = nil, nil
	s.mu.Unlock()
	if p != nil {
		p.Close()
	}
	if e != nil {
		e.Close()
	}
}

// listenProxy binds the stable client address again; the port a previous
// proxy just released may take a moment to be free.
func listenProxy(addr, target string) (*faultproxy.Proxy, error) {
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		var p *faultproxy.Proxy
		if p, err = faultproxy.Listen(addr, target); err == nil {
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// Etcd returns the running embedded server, nil when stopped.
func (s *Server) Etcd() *embed.Etcd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e
}
