package zk_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/registry"
)

// shared is the package's ZooKeeper server, started by the first test that
// needs it and stopped by TestMain.
var shared struct {
	once sync.Once
	dir  string
	srv  *zktest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// server returns the shared server, starting it on first use.
func server(t testing.TB) *zktest.Server {
	t.Helper()
	shared.once.Do(func() {
		if shared.err = zktest.Available(); shared.err != nil {
			return
		}
		shared.dir, shared.err = os.MkdirTemp("", "regchain-zk-")
		if shared.err == nil {
			shared.srv, shared.err = zktest.New(shared.dir)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

var rootSeq atomic.Int64

// uniqueRoot returns a root node no other test uses.
func uniqueRoot(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/regchain-test/%s-%d-%d", name, os.Getpid(), rootSeq.Add(1))
}

// newRegistry returns a Registry on srv (the shared server if nil) with a
// unique root and a 4 s session unless cfg says otherwise, closed when the
// test ends. (Tests that do not exercise expiry gain nothing from shorter
// sessions, and on a loaded CI machine a 2 s session can time out.)
func newRegistry(t testing.TB, srv *zktest.Server, cfg zk.Config) *zk.Registry {
	t.Helper()
	if srv == nil {
		srv = server(t)
	}
	if cfg.Client == nil && cfg.Servers == nil {
		cfg.Servers = []string{srv.Addr}
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 4 * time.Second
	}
	if cfg.Namespace == "" {
		cfg.Namespace = uniqueRoot(t)
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	r, err := zk.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// testLogger logs to t.Log until the test ends (go-zookeeper may log from
// its goroutines a moment after Close). ZKTEST_DEBUG=1 adds Debug lines.
func testLogger(t testing.TB) *slog.Logger {
	tw := &testWriter{t: t}
	t.Cleanup(tw.stop)
	level := slog.LevelInfo
	if os.Getenv("ZKTEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// recorder is a slog handler that keeps messages, for tests that check what
// was logged.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	h.msgs = append(h.msgs, b.String())
	h.mu.Unlock()
	return nil
}
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recorder) WithGroup(string) slog.Handler      { return h }

func (h *recorder) find(sub string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

// register registers in. A first attempt that fails with ErrUnavailable (a
// loaded machine can drop a short session's connection) is kept and retried
// by the Registry: then it waits for the registration to go live.
func register(t testing.TB, r *zk.Registry, in *registry.Instance) {
	t.Helper()
	err := r.Register(ctxT(t, 10*time.Second), in)
	if err == nil {
		return
	}
	if !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Register(%s): %v", in, err)
	}
	t.Logf("Register(%s): %v; waiting for the retry", in, err)
	testutil.WaitFor(t, 30*time.Second, "registration of "+in.String()+" live", func() string {
		for _, s := range r.Registrations() {
			if s.Instance.Key() == in.Key() {
				if s.Live {
					return ""
				}
				return fmt.Sprintf("pending: %v", s.LastError)
			}
		}
		return "not in Registrations"
	})
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func instance(svc, id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:        id,
		Name:      svc,
		Version:   "v1.2.3",
		Metadata:  map[string]string{"zone": "z1", "weight": "10"},
		Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d?isSecure=false", port), fmt.Sprintf("http://127.0.0.1:%d", port+1)},
	}
}

// nodeState describes path as seen by an observer connection: "" if it
// holds want in an ephemeral node whose owner satisfies owner.
func nodeState(o *gozk.Conn, path string, want []byte, owner func(int64) bool) string {
	data, st, err := o.Get(path)
	if err != nil {
		return fmt.Sprintf("get %s: %v", path, err)
	}
	if string(data) != string(want) {
		return fmt.Sprintf("%s holds %q, want %q", path, data, want)
	}
	if st.EphemeralOwner == 0 || owner != nil && !owner(st.EphemeralOwner) {
		return fmt.Sprintf("%s has owner %#x", path, st.EphemeralOwner)
	}
	return ""
}

// nexter reads a watcher from a goroutine so that tests can wait with a
// deadline.
type nexter struct {
	t  testing.TB
	w  registry.Watcher
	ch chan nextResult
}

type nextResult struct {
	u   *registry.Update
	err error
}

func newNexter(t testing.TB, w registry.Watcher) *nexter {
	n := &nexter{t: t, w: w, ch: make(chan nextResult, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			n.ch <- nextResult{u, err}
			if err != nil && (errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed)) {
				return
			}
		}
	}()
	t.Cleanup(func() {
		w.Stop()
		for {
			select {
			case <-n.ch:
			case <-done:
				return
			}
		}
	})
	return n
}

// until reads until an Update of svc with exactly want arrives, logging
// transient errors; it returns how long that took.
func (n *nexter) until(timeout time.Duration, svc string, want ...*registry.Instance) time.Duration {
	n.t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var last *registry.Update
	for {
		select {
		case r := <-n.ch:
			if r.err != nil {
				if errors.Is(r.err, registry.ErrStopped) || errors.Is(r.err, registry.ErrClosed) {
					n.t.Fatalf("watcher ended: %v", r.err)
				}
				n.t.Logf("transient watch error: %v", r.err)
				continue
			}
			if r.u.Service != svc {
				continue
			}
			last = r.u
			if registry.EqualInstances(r.u.Instances, want) {
				return time.Since(start)
			}
		case <-deadline.C:
			n.t.Fatalf("watch %s: no update with %v within %v; last %v", svc, want, timeout, last)
		}
	}
}

func slogNew(h slog.Handler) *slog.Logger { return slog.New(h) }
