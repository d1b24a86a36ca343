package file

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return mustOpen(t, tempPath(t, "reg.db"), quiet())
	})
}

// A file opened read-only refuses writes as ErrInvalid: the chain must not
// replay them.
func TestConformanceReadOnly(t *testing.T) {
	registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry {
		path := tempPath(t, "reg.db")
		if err := mustOpen(t, path, quiet()).Close(); err != nil {
			t.Fatal(err)
		}
		return mustOpen(t, path, Config{ReadOnly: true, Logger: quiet().Logger})
	})
}

func TestRegistryPersists(t *testing.T) {
	path := tempPath(t, "reg.db")
	r := mustOpen(t, path, quiet())
	a1, a2, b1 := inst("a", "a1", 1), inst("a", "a2", 2), inst("b", "b1", 3)
	for _, in := range []*registry.Instance{a1, a2, b1, a1.Clone()} { // the last one changes nothing
		if err := r.Register(ctxT(t), in); err != nil {
			t.Fatalf("Register(%s): %v", in, err)
		}
	}
	if err := r.Deregister(ctxT(t), &registry.Instance{Name: "a", ID: "a2"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister(ctxT(t), &registry.Instance{Name: "a", ID: "nope"}); err != nil { // changes nothing
		t.Fatal(err)
	}
	if err := checkState(r, "a", 4, a1); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r = mustOpen(t, path, quiet())
	defer r.Close()
	if err := checkState(r, "a", 4, a1); err != nil {
		t.Errorf("reopened: %v", err)
	}
	if err := checkState(r, "b", 4, b1); err != nil {
		t.Errorf("reopened: %v", err)
	}
	names, err := r.ListServices(ctxT(t))
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Errorf("reopened: ListServices = %v, %v; want [a b]", names, err)
	}
	// The revision goes on from where it was.
	if err := r.Register(ctxT(t), a2); err != nil {
		t.Fatal(err)
	}
	if err := checkState(r, "a", 5, a1, a2); err != nil {
		t.Error(err)
	}
}

// countRecords returns the number of instance records in the file at path.
func countRecords(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bucketInstances)).Stats().KeyN
		return nil
	})
	return n
}

func TestRegistryInvalidWritesNothing(t *testing.T) {
	path := tempPath(t, "reg.db")
	r := mustOpen(t, path, quiet())
	bad := inst("svc", "x", 1)
	bad.Endpoints = []string{"not a url"}
	if err := r.Register(ctxT(t), bad); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register(bad endpoint) = %v, want ErrInvalid", err)
	}
	if err := r.Register(ctxT(t), nil); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register(nil) = %v, want ErrInvalid", err)
	}
	if err := r.Deregister(ctxT(t), nil); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Deregister(nil) = %v, want ErrInvalid", err)
	}
	if err := r.Deregister(ctxT(t), &registry.Instance{Name: "svc", ID: "a/b"}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Deregister(bad id) = %v, want ErrInvalid", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countRecords(t, path); n != 0 {
		t.Errorf("file holds %d records after invalid registrations, want 0", n)
	}
}

func TestRegistryContextDone(t *testing.T) {
	path := tempPath(t, "reg.db")
	r := mustOpen(t, path, quiet())
	defer r.Close()
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	if err := r.Register(ctx, inst("svc", "a", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Register with a cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := r.GetService(ctxT(t), "svc"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetService after a cancelled Register = %v, want ErrNotFound", err)
	}
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	r := mustOpen(t, filepath.Join(dir, "reg.db"), quiet())
	r.Close()
	s := mustOpenStore(t, filepath.Join(dir, "snap.db"), quiet())
	s.Close()
	for _, name := range []string{"reg.db", "snap.db"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, got)
		}
	}
}

func TestLockedInProcess(t *testing.T) {
	// A second open of the same file in this process takes its own flock
	// (Linux locks per open file description) and waits like another
	// process would.
	path := tempPath(t, "reg.db")
	r := mustOpen(t, path, quiet())
	const timeout = 150 * time.Millisecond
	for _, cfg := range []Config{{Timeout: timeout}, {Timeout: -1}} {
		start := time.Now()
		r2, err := Open(path, cfg)
		took := time.Since(start)
		if err == nil {
			r2.Close()
		}
		if !errors.Is(err, ErrLocked) || !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("second Open (timeout %v) = %v, want ErrLocked and ErrUnavailable", cfg.Timeout, err)
		}
		if max := max(cfg.Timeout, 0) + 2*time.Second; took > max {
			t.Errorf("second Open (timeout %v) took %v", cfg.Timeout, took)
		}
		if cfg.Timeout > 0 && took < cfg.Timeout/2 {
			t.Errorf("second Open (timeout %v) gave up after only %v", cfg.Timeout, took)
		}
	}
	if _, err := OpenStore(path, Config{Timeout: timeout}); !errors.Is(err, ErrLocked) {
		t.Errorf("OpenStore of a file a Registry holds = %v, want ErrLocked", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = mustOpen(t, path, Config{Timeout: timeout})
	r.Close()
}

func TestUnwritableLocation(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want error
	}{
		{filepath.Join(dir, "missing", "reg.db"), fs.ErrNotExist},
		{filepath.Join(notDir, "reg.db"), syscall.ENOTDIR},
		// sysfs refuses new files even to root.
		{"/sys/regchain-file-test.db", nil},
	}
	for _, c := range cases {
		for name, open := range map[string]func() error{
			"Open":      func() error { r, err := Open(c.path, quiet()); closeIf(r); return err },
			"OpenStore": func() error { s, err := OpenStore(c.path, quiet()); closeIf(s); return err },
		} {
			err := open()
			if err == nil {
				t.Errorf("%s(%s) succeeded", name, c.path)
				continue
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("%s(%s) = %v, want %v", name, c.path, err, c.want)
			}
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("%s(%s) = %v: want an I/O error naming the path", name, c.path, err)
			}
			if _, err := os.Stat(c.path); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("%s(%s) left a file behind: %v", name, c.path, err)
			}
		}
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	regPath, snapPath := filepath.Join(dir, "reg.db"), filepath.Join(dir, "snap.db")
	r := mustOpen(t, regPath, quiet())
	a1 := inst("a", "a1", 1)
	if err := r.Register(ctxT(t), a1); err != nil {
		t.Fatal(err)
	}
	r.Close()
	s := mustOpenStore(t, snapPath, quiet())
	saved := fleet(2, 2)
	if err := s.SaveSnapshot(ctxT(t), saved); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, err := os.ReadFile(snapPath)
	if err != nil {
		t.Fatal(err)
	}

	ro := Config{ReadOnly: true, Logger: quiet().Logger}
	r1, r2 := mustOpen(t, regPath, ro), mustOpen(t, regPath, ro) // shared locks coexist
	defer r1.Close()
	defer r2.Close()
	if err := checkState(r1, "a", 1, a1); err != nil {
		t.Error(err)
	}
	if err := r1.Register(ctxT(t), inst("a", "a2", 2)); !errors.Is(err, ErrReadOnly) || !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Register on a read-only registry = %v, want ErrReadOnly and ErrInvalid", err)
	}
	if _, err := Open(regPath, Config{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("writable Open while read-only opens hold the file = %v, want ErrLocked", err)
	}

	s = mustOpenStore(t, snapPath, ro)
	if err := checkEntries(s, saved); err != nil {
		t.Error(err)
	}
	if err := s.SaveSnapshot(ctxT(t), fleet(1, 1)); !errors.Is(err, ErrReadOnly) || !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("SaveSnapshot on a read-only store = %v, want ErrReadOnly and ErrInvalid", err)
	}
	s.Close()
	if after, _ := os.ReadFile(snapPath); !bytes.Equal(before, after) {
		t.Errorf("a read-only open changed the file")
	}
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenStore(missing, ro); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only OpenStore of a missing file = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only OpenStore created %s", missing)
	}
}

// rawUpdate runs fn on the bbolt file at path, behind regchain's back.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestSchema(t *testing.T) {
	setSchema := func(v []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), v) }
	}
	cases := []struct {
		name  string
		fn    func(tx *bolt.Tx) error
		want  error
		words string
	}{
		{"newer", setSchema([]byte{0, 0, 0, 0, 0, 0, 0, 3}), ErrSchema, "schema version 3 is newer than 2"},
		{"zero", setSchema(make([]byte, 8)), ErrCorrupt, "schema version 0"},
		{"short", setSchema([]byte{1}), ErrCorrupt, "schema version is 1 bytes"},
		{"missing", func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketMeta)).Delete([]byte(keySchema)) }, ErrCorrupt, "schema version is 0 bytes"},
		{"foreign", func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte(bucketMeta)); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte("members"))
			return err
		}, ErrSchema, "not written by regchain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, kind := range []string{"registry", "store"} {
				path := filepath.Join(dir, kind+".db")
				if kind == "registry" {
					mustOpen(t, path, quiet()).Close()
				} else {
					mustOpenStore(t, path, quiet()).Close()
				}
				rawUpdate(t, path, c.fn)
				var err error
				if kind == "registry" {
					var r *Registry
					r, err = Open(path, quiet())
					closeIf(r)
				} else {
					var s *Store
					s, err = OpenStore(path, quiet())
					closeIf(s)
				}
				if !errors.Is(err, c.want) || !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), c.words) {
					t.Errorf("%s: open = %v, want %v, ErrInvalid and %q", kind, err, c.want, c.words)
				}
			}
		})
	}
}

func TestSkipsUndecodableRecords(t *testing.T) {
	path := tempPath(t, "reg.db")
	r := mustOpen(t, path, quiet())
	a1 := inst("a", "a1", 1)
	if err := r.Register(ctxT(t), a1); err != nil {
		t.Fatal(err)
	}
	r.Close()
	other, _ := registry.Marshal(inst("b", "b1", 2))
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketInstances))
		b.Put([]byte("a/garbage"), []byte("{not json"))
		b.Put([]byte("a/b1"), other) // holds another instance than its key says
		return b.Put([]byte("nokey"), other)
	})
	var logs bytes.Buffer
	r = mustOpen(t, path, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer r.Close()
	if err := checkState(r, "a", 1, a1); err != nil {
		t.Error(err)
	}
	if _, err := r.GetService(ctxT(t), "b"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetService(b) = %v, want ErrNotFound", err)
	}
	for _, key := range []string{"a/garbage", "a/b1", "nokey"} {
		if !strings.Contains(logs.String(), "key="+key) {
			t.Errorf("log does not mention skipped record %q:\n%s", key, logs.String())
		}
	}
}

// TestPanicInTransaction: a panic or a memory fault inside a bbolt
// transaction (damage the check at Open did not see) becomes ErrCorrupt,
// and the file is not used again.
func TestPanicInTransaction(t *testing.T) {
	// A real memory fault: a mapping of a file that was then truncated.
	mapped := tempPath(t, "mapped")
	if err := os.WriteFile(mapped, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	mf, err := os.Open(mapped)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(mf.Fd()), 0, 8192, syscall.PROT_READ, syscall.MAP_SHARED)
	mf.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	if err := os.Truncate(mapped, 0); err != nil {
		t.Fatal(err)
	}

	for name, fn := range map[string]func(*bolt.Tx) error{
		"panic": func(*bolt.Tx) error { panic("assertion failed: read: zero-length inode key") },
		"fault": func(*bolt.Tx) error {
			if mem[4096] == 42 { // SIGBUS: the page is beyond the file's end
				return errors.New("unreachable")
			}
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := mustOpen(t, tempPath(t, "reg.db"), quiet())
			defer r.Close()
			a1 := inst("a", "a1", 1)
			if err := r.Register(ctxT(t), a1); err != nil {
				t.Fatal(err)
			}
			err := r.d.update(fn)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("update that panics = %v, want ErrCorrupt", err)
			}
			if err := r.Register(ctxT(t), inst("a", "a2", 2)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Register after a panic = %v, want ErrCorrupt", err)
			}
			if err := r.Ping(ctxT(t)); !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("Ping after a panic = %v, want ErrUnavailable and ErrCorrupt", err)
			}
			if err := checkState(r, "a", 1, a1); err != nil { // memory still answers
				t.Error(err)
			}
		})
	}
	r := mustOpen(t, tempPath(t, "reg.db"), quiet())
	defer r.Close()
	if err := r.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping of a healthy registry = %v", err)
	}
}

func TestWatchWithDoneContext(t *testing.T) {
	r := mustOpen(t, tempPath(t, "reg.db"), quiet())
	defer r.Close()
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	for _, name := range []string{"svc", ""} {
		w, err := r.Watch(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Next(); !errors.Is(err, registry.ErrStopped) || !errors.Is(err, context.Canceled) {
			t.Errorf("Next on a watcher whose ctx was done = %v, want ErrStopped and Canceled", err)
		}
	}
	if err := r.Register(ctxT(t), inst("svc", "a", 1)); err != nil {
		t.Fatal(err)
	}
}
