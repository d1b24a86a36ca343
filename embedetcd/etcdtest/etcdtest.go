// Package etcdtest gives tests a real embedded etcd (package embedetcd):
// one of their own, or one shared by the tests of a package.
package etcdtest

import (
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/embedetcd"
)

// Start starts a server of the test's own, stopped when the test ends.
func Start(tb testing.TB) *embedetcd.Server {
	tb.Helper()
	srv, err := embedetcd.Start(tb.TempDir())
	if err != nil {
		tb.Fatalf("start etcd: %v", err)
	}
	tb.Cleanup(srv.Stop)
	return srv
}

// Shared is one server for the tests of a package that never stop or
// partition it; each test uses a namespace of its own. It starts on first
// use. Use it with VerifyMain, which stops it before goleak looks.
type Shared struct {
	once sync.Once
	dir  string
	srv  *embedetcd.Server
	err  error
}

// Server returns the shared server, starting it on the first call.
func (s *Shared) Server(tb testing.TB) *embedetcd.Server {
	tb.Helper()
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "regchain-etcd-test-")
		if s.err == nil {
			s.srv, s.err = embedetcd.Start(s.dir)
		}
	})
	if s.err != nil {
		tb.Fatalf("start shared etcd: %v", s.err)
	}
	return s.srv
}

// Stop stops the server, if it was started, and removes its data.
func (s *Shared) Stop() {
	if s.srv != nil {
		s.srv.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// VerifyMain is goleak.VerifyTestMain that stops s after the tests and
// before the leak check, so etcd's own goroutines are gone by then.
func VerifyMain(m *testing.M, s *Shared, opts ...goleak.Option) {
	goleak.VerifyTestMain(runner{m, s}, opts...)
}

type runner struct {
	m *testing.M
	s *Shared
}

func (r runner) Run() int {
	code := r.m.Run()
	r.s.Stop()
	return code
}
