package etcdinterop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/registry"
)

// newNamespace returns a namespace no other test uses.
func newNamespace() string {
	var b [6]byte
	rand.Read(b[:])
	return "/regchain-interop-" + hex.EncodeToString(b[:])
}

// testConfig is a configuration with short leases, timeouts and backoffs,
// a namespace of the test's own and logs to the test's output.
func testConfig(t *testing.T, endpoint string) etcd.Config {
	return etcd.Config{
		Endpoints:  []string{endpoint},
		Namespace:  newNamespace(),
		TTL:        2 * time.Second,
		Timeout:    time.Second,
		MaxBackoff: 500 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// key is the etcd key of an instance, as documented by package etcd:
// <namespace>/<name>/<id>.
func key(namespace, name, id string) string { return namespace + "/" + name + "/" + id }

// newRegistry returns a registry closed when the test ends.
func newRegistry(t *testing.T, cfg etcd.Config) *etcd.Registry {
	t.Helper()
	r, err := etcd.New(cfg)
	if err != nil {
		t.Fatalf("etcd.New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// newClient returns a plain etcd client, closed when the test ends.
func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// reader reads a regchain watcher on its own goroutine so the test can wait
// for states with deadlines.
type reader struct {
	ch     chan result
	latest map[string]*registry.Update // last Update per service, read by until
}

type result struct {
	u   *registry.Update
	err error
}

// watchReader watches name on r until the test ends.
func watchReader(t *testing.T, r registry.Registry, name string) *reader {
	t.Helper()
	w, err := r.Watch(context.Background(), name)
	if err != nil {
		t.Fatalf("Watch(%q): %v", name, err)
	}
	rd := &reader{ch: make(chan result), latest: make(map[string]*registry.Update)}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			select {
			case rd.ch <- result{u, err}:
			case <-stop:
				return
			}
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		w.Stop()
		<-done
	})
	return rd
}

// until waits until the latest Update of svc (possibly one received
// earlier) holds exactly want. Every Update must carry the adapter's
// Source, a revision and a time; transient errors are logged.
func (rd *reader) until(t *testing.T, timeout time.Duration, svc string, want ...*registry.Instance) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	last := rd.latest[svc]
	if last != nil && registry.EqualInstances(last.Instances, want) {
		return
	}
	for {
		select {
		case res := <-rd.ch:
			if res.err != nil {
				if errors.Is(res.err, registry.ErrStopped) || errors.Is(res.err, registry.ErrClosed) {
					t.Fatalf("watch %s: ended: %v", svc, res.err)
				}
				t.Logf("transient watch error: %v", res.err)
				continue
			}
			if res.u.Source != etcd.Source || res.u.Revision == 0 || res.u.Time.IsZero() {
				t.Errorf("Update %+v lacks Source, Revision or Time", res.u)
			}
			rd.latest[res.u.Service] = res.u
			if res.u.Service != svc {
				continue
			}
			last = res.u
			if registry.EqualInstances(res.u.Instances, want) {
				return
			}
		case <-timer.C:
			got := "nothing"
			if last != nil {
				got = fmt.Sprint(last.Instances)
			}
			t.Fatalf("watch %s: want %v within %v, last got %s", svc, want, timeout, got)
		}
	}
}
