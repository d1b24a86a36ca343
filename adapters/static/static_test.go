package static_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/static"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// writeJSON writes v to path atomically (temporary file, rename).
func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fileWriter runs the conformance kit against the static registry: its
// Register and Deregister rewrite the registry's file, and everything the
// kit then checks (reads, watches, copies, Close) is the static registry
// picking the change up by itself.
type fileWriter struct {
	*static.Registry
	t    testing.TB
	path string

	mu  sync.Mutex // guards ins and the file
	ins map[string]*registry.Instance
}

func (w *fileWriter) Register(ctx context.Context, in *registry.Instance) error {
	if err := w.Registry.Register(ctx, in); !errors.Is(err, static.ErrReadOnly) {
		return err // invalid or closed
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ins[in.Key()] = in.Clone()
	w.flushLocked()
	return nil
}

func (w *fileWriter) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := w.Registry.Deregister(ctx, in); !errors.Is(err, static.ErrReadOnly) {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.ins, in.Key())
	w.flushLocked()
	return nil
}

func (w *fileWriter) flushLocked() {
	list := make([]*registry.Instance, 0, len(w.ins))
	for _, k := range slices.Sorted(maps.Keys(w.ins)) {
		list = append(list, w.ins[k])
	}
	writeJSON(w.t, w.path, list)
}

func TestConformanceThroughFile(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		path := filepath.Join(t.TempDir(), "peers.json")
		writeJSON(t, path, []*registry.Instance{})
		r, err := static.New(static.Config{File: path, PollInterval: 5 * time.Millisecond, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return &fileWriter{Registry: r, t: t, path: path, ins: make(map[string]*registry.Instance)}
	})
}

func inst(name, id, addr string) *registry.Instance {
	return &registry.Instance{ID: id, Name: name, Endpoints: []string{"grpc://" + addr}}
}

func TestConfigAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	a := inst("greeter", "a", "10.0.0.1:9000")
	b := inst("greeter", "b", "10.0.0.2:9000")
	b2 := inst("greeter", "b", "10.0.0.3:9000")
	writeJSON(t, path, []*registry.Instance{b2, inst("other", "x", "10.0.0.9:1")})
	r, err := static.New(static.Config{Instances: []*registry.Instance{a, b}, File: path, PollInterval: 5 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.GetService(context.Background(), "greeter")
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{a, b2}) {
		t.Fatalf("GetService = %v, %v; want a and the file's b", got, err)
	}
	w, err := r.Watch(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	u, err := w.Next()
	if err != nil || u.Source != static.Source || len(u.Instances) != 1 {
		t.Fatalf("first Next = %+v, %v; want one instance from %q", u, err, static.Source)
	}

	// A broken file keeps the last list; a fixed one is loaded.
	if err := os.WriteFile(path, []byte(`[{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, path, []*registry.Instance{})
	u, err = w.Next()
	if err != nil || len(u.Instances) != 0 {
		t.Fatalf("after the file dropped the service: %+v, %v; want an empty state", u, err)
	}
	got, _ = r.GetService(context.Background(), "greeter")
	if !registry.EqualInstances(got, []*registry.Instance{a, b}) {
		t.Fatalf("after the file emptied: greeter = %v, want the configured a and b", got)
	}
}

func TestBrokenFileKeepsLastList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	a := inst("greeter", "a", "10.0.0.1:9000")
	writeJSON(t, path, []*registry.Instance{a})
	r, err := static.New(static.Config{File: path, PollInterval: 5 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, bad := range []string{`[{"id":`, `{"not":"a list"}`, `[{"id":"a","name":"greeter","endpoints":["nohost"]}]`} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		// The registry polls every 5ms; give it many polls to (wrongly)
		// drop the list, checking each time.
		deadline := time.Now().Add(100 * time.Millisecond)
		for time.Now().Before(deadline) {
			got, err := r.GetService(context.Background(), "greeter")
			if err != nil || len(got) != 1 {
				t.Fatalf("with a bad file %q: %v, %v; want the last list", bad, got, err)
			}
			time.Sleep(time.Millisecond) // pacing of a negative check
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	b := inst("greeter", "b", "10.0.0.2:9000")
	writeJSON(t, path, []*registry.Instance{b})
	testutil.WaitFor(t, 5*time.Second, "fixed file loaded", func() string {
		got, _ := r.GetService(context.Background(), "greeter")
		if !registry.EqualInstances(got, []*registry.Instance{b}) {
			return "old list"
		}
		return ""
	})
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"id":"a","name":"greeter","endpoints":[]}]`), 0o600)
	cases := []struct {
		name string
		cfg  static.Config
		want string
	}{
		{"missing file", static.Config{File: filepath.Join(dir, "none.json")}, "no such file"},
		{"invalid file instance", static.Config{File: bad}, "instance 0 (greeter/a)"},
		{"invalid config instance", static.Config{Instances: []*registry.Instance{{Name: "x"}}}, "config: instance 0"},
		{"nil config instance", static.Config{Instances: []*registry.Instance{nil}}, "null"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := static.New(c.cfg)
			if err == nil {
				r.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	r, err := static.New(static.Config{Instances: []*registry.Instance{inst("greeter", "a", "10.0.0.1:1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Register(context.Background(), inst("greeter", "b", "10.0.0.1:2"))
	if !errors.Is(err, static.ErrReadOnly) || !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register = %v, want ErrReadOnly and ErrInvalid", err)
	}
	if err := r.Deregister(context.Background(), inst("greeter", "a", "10.0.0.1:1")); !errors.Is(err, static.ErrReadOnly) {
		t.Errorf("Deregister = %v, want ErrReadOnly", err)
	}
}

// The static tier refuses writes as ErrInvalid: the chain must not replay
// them.
func TestConformanceReadOnly(t *testing.T) {
	registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry {
		r, err := static.New(static.Config{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}
