package kubetest

import (
	"net/http"
	"testing"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Start starts a server for tb (Options.Dir defaults to a temporary
// directory of tb's) and stops it, and its own etcd, when tb ends. A
// missing binary fails tb: the tests that need a real API server are never
// skipped.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err) // err names kubetest already
	}
	tb.Cleanup(s.Close)
	return s
}

// Client returns a clientset for user, over a transport of its own whose
// connections are closed when tb ends.
func (s *Server) Client(tb testing.TB, user string) k8s.Interface {
	tb.Helper()
	c, closeIdle, err := NewClient(s.Config(user))
	if err != nil {
		tb.Fatalf("kubetest: client: %v", err)
	}
	tb.Cleanup(closeIdle)
	return c
}

// NewClient returns a clientset for cfg over a transport of its own (not
// client-go's process-wide cache), and a func that closes its idle
// connections.
func NewClient(cfg *rest.Config) (k8s.Interface, func(), error) {
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 25}
	rt, err := rest.HTTPWrappersForConfig(cfg, tr)
	if err != nil {
		return nil, nil, err
	}
	c, err := k8s.NewForConfigAndClient(cfg, &http.Client{Transport: rt})
	if err != nil {
		return nil, nil, err
	}
	return c, tr.CloseIdleConnections, nil
}
