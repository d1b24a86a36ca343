package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/regchain/regchain/adapters/kubernetes/kubetest"
	"github.com/regchain/regchain/registry"
)

// shared is one API server (with RBAC: the admin user bypasses it) for the
// tests that never stop it; each test uses namespaces of its own.
var shared sharedServer

type sharedServer struct {
	once sync.Once
	dir  string
	srv  *kubetest.Server
	err  error
}

func (s *sharedServer) get(tb testing.TB) *kubetest.Server {
	tb.Helper()
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "regchain-kube-test-")
		if s.err == nil {
			s.srv, s.err = kubetest.New(kubetest.Options{Dir: s.dir, RBAC: true})
		}
	})
	if s.err != nil {
		tb.Fatalf("shared kube-apiserver: %v", s.err)
	}
	return s.srv
}

func (s *sharedServer) stop() {
	if s.srv != nil {
		s.srv.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// leakOptions are goroutines that are not the tests': klog's flush daemon,
// started by client-go's import.
var leakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runner{m}, leakOptions...)
}

type runner struct{ m *testing.M }

func (r runner) Run() int {
	code := r.m.Run()
	shared.stop()
	return code
}

func ctxT(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

func randomToken() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newNamespace creates a namespace no other test uses.
func newNamespace(tb testing.TB, admin k8s.Interface) string {
	tb.Helper()
	name := "rt-" + randomToken()
	_, err := admin.CoreV1().Namespaces().Create(ctxT(tb, 30*time.Second), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("create namespace: %v", err)
	}
	return name
}

// testConfig is the base configuration of tests: the server's admin, one
// namespace, short timeouts and backoffs.
func testConfig(tb testing.TB, srv *kubetest.Server, ns string) Config {
	return Config{
		REST:          srv.Config(kubetest.UserAdmin),
		Namespace:     ns,
		Timeout:       10 * time.Second,
		MaxBackoff:    500 * time.Millisecond,
		ProbeInterval: 50 * time.Millisecond,
		Logger:        testLogger(tb),
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

// grant gives user the verbs on resources (of API group group) in
// namespace ns.
func grant(tb testing.TB, admin k8s.Interface, ns, user, group string, resources, verbs []string) {
	tb.Helper()
	ctx := ctxT(tb, 30*time.Second)
	name := user + "-" + randomToken()
	_, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{group}, Resources: resources, Verbs: verbs}},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("create role: %v", err)
	}
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user, APIGroup: rbacv1.GroupName}},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: name, APIGroup: rbacv1.GroupName},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("create role binding: %v", err)
	}
}

func instance(name, id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:        id,
		Name:      name,
		Version:   "v1",
		Metadata:  map[string]string{"zone": "z1"},
		Endpoints: []string{"grpc://127.0.0.1:" + strconv.Itoa(port)},
	}
}

// logRecorder forwards the registry's log to the test log and counts
// messages.
type logRecorder struct {
	tb   testing.TB
	mu   *sync.Mutex
	msgs *[]string
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(&logRecorder{tb: tb, mu: new(sync.Mutex), msgs: new([]string)})
}

func recordingLogger(tb testing.TB) (*slog.Logger, *logRecorder) {
	h := &logRecorder{tb: tb, mu: new(sync.Mutex), msgs: new([]string)}
	return slog.New(h), h
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelDebug }

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
	*h.msgs = append(*h.msgs, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	logSafely(h.tb, b.String())
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// count returns how many messages ("LEVEL message") contained substr.
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

// logSafely logs to tb unless tb has ended: client-go may log from its
// goroutines until the registry's Close returns, which runs in a cleanup.
func logSafely(tb testing.TB, msg string) {
	defer func() { _ = recover() }()
	tb.Log(msg)
}
