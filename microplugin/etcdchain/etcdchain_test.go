package etcdchain

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/logger"
	mreg "go-micro.dev/v4/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func etcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// NewRegistry has the shape of go-micro's command-line registry table.
var _ func(...mreg.Option) mreg.Registry = NewRegistry

// recorder is a go-micro logger that keeps the messages at its level and
// above.
type recorder struct {
	level logger.Level
	mu    *sync.Mutex
	lines *[]string
}

func newRecorder(level logger.Level) *recorder {
	return &recorder{level: level, mu: new(sync.Mutex), lines: new([]string)}
}

func (l *recorder) Init(...logger.Option) error                 { return nil }
func (l *recorder) Options() logger.Options                     { return logger.Options{Level: l.level} }
func (l *recorder) String() string                              { return "recorder" }
func (l *recorder) Fields(map[string]any) logger.Logger         { return l }
func (l *recorder) Log(level logger.Level, v ...any)            { l.add(level, fmt.Sprint(v...)) }
func (l *recorder) Logf(level logger.Level, f string, v ...any) { l.add(level, fmt.Sprintf(f, v...)) }

func (l *recorder) add(level logger.Level, msg string) {
	if !l.level.Enabled(level) {
		return
	}
	l.mu.Lock()
	*l.lines = append(*l.lines, level.String()+" "+msg)
	l.mu.Unlock()
}

func (l *recorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), *l.lines...)
}

func TestSettingsFromOptions(t *testing.T) {
	t.Setenv("ETCD_USERNAME", "envuser")
	t.Setenv("ETCD_PASSWORD", "envpw")
	t.Setenv("MICRO_REGISTRY_ADDRESS", "")
	own := &tls.Config{ServerName: "etcd"}
	cases := []struct {
		name  string
		opts  []mreg.Option
		check func(s settings) string
	}{
		{"defaults", nil, func(s settings) string {
			if len(s.endpoints) != 0 || s.tls != nil || s.codec != (microplugin.EtcdCodec{}) || s.snapshot != defaultPath(t) || s.user != "envuser" {
				return fmt.Sprintf("%+v", s)
			}
			return ""
		}},
		{"addrs", []mreg.Option{mreg.Addrs("h1", "h2:2380", "")}, func(s settings) string {
			if strings.Join(s.endpoints, ",") != "h1:2379,h2:2380" {
				return fmt.Sprint(s.endpoints)
			}
			return ""
		}},
		{"secure", []mreg.Option{mreg.Secure(true)}, func(s settings) string {
			if s.tls == nil || s.tls.InsecureSkipVerify {
				return "Secure without TLSConfig must verify certificates"
			}
			return ""
		}},
		{"tls config", []mreg.Option{mreg.Secure(true), mreg.TLSConfig(own)}, func(s settings) string {
			if s.tls != own {
				return "TLSConfig not used"
			}
			return ""
		}},
		{"plugin options", []mreg.Option{Auth("u", "p"), TTL(7 * time.Second), SnapshotPath(""), Layout(etcd.KratosCodec{}), mreg.Timeout(time.Second)}, func(s settings) string {
			if s.user != "u" || s.password != "p" || s.ttl != 7*time.Second || s.snapshot != "" || s.codec != (etcd.KratosCodec{}) || s.timeout != time.Second {
				return fmt.Sprintf("%+v", s)
			}
			return ""
		}},
	}
	for _, c := range cases {
		o := mreg.NewOptions(c.opts...)
		if why := c.check(settingsOf(*o)); why != "" {
			t.Errorf("%s: %s", c.name, why)
		}
	}
}

func microService(name, id, addr string) *mreg.Service {
	return &mreg.Service{Name: name, Version: "1.0", Metadata: map[string]string{"team": "a"},
		Nodes: []*mreg.Node{{Id: id, Address: addr, Metadata: map[string]string{"transport": "grpc"}}}}
}

func waitNode(t *testing.T, r mreg.Registry, name, id string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, name+" has node "+id, func() string {
		svcs, err := r.GetService(name)
		if err != nil {
			return err.Error()
		}
		for _, s := range svcs {
			for _, n := range s.Nodes {
				if n.Id == id {
					return ""
				}
			}
		}
		return "node missing"
	})
}

// NewRegistry from go-micro options: registrations reach etcd in the
// go-micro layout, reads work, the snapshot is where it was asked to be,
// start-up logs nothing at INFO, and an Init with new addresses moves the
// registrations to the new etcd.
func TestNewRegistry(t *testing.T) {
	srv1, srv2 := etcdtest.Start(t), etcdtest.Start(t)
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap", "micro.snapshot")
	rec := newRecorder(logger.InfoLevel)
	reg := NewRegistry(mreg.Addrs(srv1.Endpoint()), mreg.Timeout(2*time.Second), mreg.Logger(rec),
		SnapshotPath(snap), TTL(3*time.Second))
	defer microplugin.Close(reg)

	if err := reg.Register(microService("greeter", "greeter-1", "10.0.0.1:9000")); err != nil {
		t.Fatal(err)
	}
	waitNode(t, reg, "greeter", "greeter-1")
	// The record is in the go-micro plugin's place and shape.
	cli := etcdClient(t, srv1.Endpoint())
	resp, err := cli.Get(context.Background(), "/micro/registry/greeter/greeter-1")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"nodes":[{"id":"greeter-1","address":"10.0.0.1:9000"`) {
		t.Fatalf("etcd record: %v, %v", resp, err)
	}
	testutil.WaitFor(t, 10*time.Second, "snapshot saved", testutil.Until(func() bool {
		return Chain(reg).Status().Snapshot.Services > 0
	}))
	// Nothing at INFO or above from a healthy start-up, and everything went
	// through the go-micro logger.
	if loud := rec.all(); len(loud) != 0 {
		t.Errorf("logged at INFO and above during a healthy start-up: %q", loud)
	}

	if err := reg.Init(mreg.Addrs(srv2.Endpoint())); err != nil {
		t.Fatal(err)
	}
	cli2 := etcdClient(t, srv2.Endpoint())
	testutil.WaitFor(t, 10*time.Second, "registration moved to the new etcd", testutil.Until(func() bool {
		resp, err := cli2.Get(context.Background(), "/micro/registry/greeter/greeter-1")
		return err == nil && len(resp.Kvs) == 1
	}))
	// Close through go-micro's interface (the hook for a program that
	// holds a registry.Registry), twice: the second does nothing.
	for range 2 {
		if err := microplugin.Close(reg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.GetService("greeter"); err == nil {
		t.Error("GetService after Close succeeded")
	}
	if Chain(reg) != nil {
		t.Error("Chain after Close is not nil")
	}
	// Other registries are not touched.
	if err := microplugin.Close(struct{ mreg.Registry }{}); err != nil {
		t.Errorf("Close of another registry: %v", err)
	}
	if Chain(struct{ mreg.Registry }{}) != nil || Chain(microplugin.New(registrytest.NewMemory())) != nil {
		t.Error("Chain of another registry is not nil")
	}
}

// Two processes of one program share the default snapshot path: the second
// runs without a snapshot (warned), it does not fail.
func TestNewRegistrySnapshotLocked(t *testing.T) {
	srv := etcdtest.Start(t)
	snap := filepath.Join(t.TempDir(), "shared.snapshot")
	first := NewRegistry(mreg.Addrs(srv.Endpoint()), SnapshotPath(snap), mreg.Logger(newRecorder(logger.InfoLevel)))
	defer microplugin.Close(first)
	if Chain(first) == nil {
		t.Fatal("no chain")
	}
	rec := newRecorder(logger.InfoLevel)
	second := NewRegistry(mreg.Addrs(srv.Endpoint()), SnapshotPath(snap), mreg.Logger(rec))
	defer microplugin.Close(second)
	if err := second.Register(microService("billing", "billing-1", "10.0.0.2:1")); err != nil {
		t.Fatal(err)
	}
	waitNode(t, first, "billing", "billing-1")
	found := false
	for _, l := range rec.all() {
		if strings.Contains(l, "no snapshot") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning about the locked snapshot: %q", rec.all())
	}
}

func defaultPath(t *testing.T) string {
	t.Helper()
	p, err := DefaultSnapshotPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDefaultSnapshotPathNeverShared: with no user cache directory, or one
// other users may write, there is no default snapshot file: every call of
// NewRegistry's registry fails naming SnapshotPath. It used to fall back
// to a fixed name in the shared temporary directory, where another user
// could plant a snapshot the process then served.
func TestDefaultSnapshotPathNeverShared(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, home, xdg string }{
		{"no HOME, no XDG_CACHE_HOME", "", ""},
		{"a cache directory others may write", "", shared},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("HOME", c.home)
			t.Setenv("XDG_CACHE_HOME", c.xdg)
			p, err := DefaultSnapshotPath()
			if err == nil || !strings.Contains(err.Error(), "etcdchain.SnapshotPath") || !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("DefaultSnapshotPath() = %q, %v; want an error naming etcdchain.SnapshotPath", p, err)
			}
			reg := NewRegistry(mreg.Addrs("127.0.0.1:1"), mreg.Logger(newRecorder(logger.InfoLevel)))
			defer microplugin.Close(reg)
			if err := reg.Register(microService("greeter", "g1", "10.0.0.1:9000")); err == nil || !strings.Contains(err.Error(), "etcdchain.SnapshotPath") {
				t.Errorf("Register = %v, want the error naming etcdchain.SnapshotPath", err)
			}
			// Saying where, or that there is none, is enough.
			none := NewRegistry(mreg.Addrs("127.0.0.1:1"), SnapshotPath(""))
			defer microplugin.Close(none)
			if Chain(none) == nil {
				t.Error("with SnapshotPath(\"\"): no chain")
			}
		})
	}
	own := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", own)
	if p, err := DefaultSnapshotPath(); err != nil || !strings.HasPrefix(p, own+string(filepath.Separator)+"regchain") {
		t.Errorf("DefaultSnapshotPath() = %q, %v; want a file under %s", p, err, own)
	}

	// A snapshot path another user could change is refused, not skipped.
	reg := NewRegistry(mreg.Addrs("127.0.0.1:1"), SnapshotPath(filepath.Join(shared, "planted.snapshot")),
		mreg.Logger(newRecorder(logger.InfoLevel)))
	defer microplugin.Close(reg)
	if _, err := reg.GetService("greeter"); !errors.Is(err, file.ErrUnsafe) {
		t.Errorf("GetService with a snapshot in a shared directory = %v, want file.ErrUnsafe", err)
	}
}

// TestAuthHidden: the etcd password given to NewRegistry shows under no
// fmt verb and in no slog handler.
func TestAuthHidden(t *testing.T) {
	reg := NewRegistry(mreg.Addrs("127.0.0.1:1"), Auth("app", "s3cret-pw"), SnapshotPath("")).(*microplugin.Registry)
	defer reg.Close()
	testutil.NoSecret(t, "s3cret-pw", "*microplugin.Registry", reg)
	testutil.NoSecret(t, "s3cret-pw", "microplugin options", reg.Options())
}
