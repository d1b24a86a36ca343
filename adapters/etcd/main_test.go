package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/registry"
)

// shared is one embedded etcd for the tests that do not stop or partition
// their server; each test uses its own namespace.
var shared etcdtest.Shared

func TestMain(m *testing.M) { etcdtest.VerifyMain(m, &shared) }

// newNamespace returns a namespace no other test uses.
func newNamespace() string {
	var b [6]byte
	rand.Read(b[:])
	return "/regchain-test-" + hex.EncodeToString(b[:])
}

// testConfig is the base configuration of tests: short leases, timeouts
// and backoffs so faults heal in seconds.
func testConfig(tb testing.TB, endpoint string) Config {
	return Config{
		Endpoints:  []string{endpoint},
		Namespace:  newNamespace(),
		TTL:        2 * time.Second,
		Timeout:    time.Second,
		MaxBackoff: 500 * time.Millisecond,
		Logger:     testLogger(tb, nil),
	}
}

func newRegistry(tb testing.TB, cfg Config) *Registry {
	tb.Helper()
	r, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return r
}

// newClient returns a plain etcd client for the test to look at and tamper
// with the server directly.
func newClient(tb testing.TB, endpoint string) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

func instance(name, id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:        id,
		Name:      name,
		Version:   "v1",
		Metadata:  map[string]string{"zone": "z1"},
		Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", port)},
	}
}

// logRecorder is a slog.Handler that forwards to the test log and keeps the
// messages, so tests can check which path the registry took.
type logRecorder struct {
	tb    testing.TB
	mu    *sync.Mutex
	msgs  *[]string
	attrs []slog.Attr
}

func testLogger(tb testing.TB, rec **logRecorder) *slog.Logger {
	h := &logRecorder{tb: tb, mu: new(sync.Mutex), msgs: new([]string)}
	if rec != nil {
		*rec = h
	}
	return slog.New(h)
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteByte(' ')
		b.WriteString(a.String())
		return true
	})
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	h.tb.Log(b.String())
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(c.attrs[:len(c.attrs):len(c.attrs)], as...)
	return &c
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// count returns how many messages contained substr.
func (h *logRecorder) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range *h.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}
