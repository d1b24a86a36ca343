//go:build unix

package file

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// opens are the four ways to open a file, each closing what it opened.
var opens = []struct {
	name string
	open func(path string, cfg Config) error
}{
	{"OpenStore", func(p string, cfg Config) error { return closeIt(OpenStore(p, cfg)) }},
	{"Open", func(p string, cfg Config) error { return closeIt(Open(p, cfg)) }},
	{"OpenStore read-only", func(p string, cfg Config) error { cfg.ReadOnly = true; return closeIt(OpenStore(p, cfg)) }},
	{"Open read-only", func(p string, cfg Config) error { cfg.ReadOnly = true; return closeIt(Open(p, cfg)) }},
}

func closeIt[T interface{ Close() error }](v T, err error) error {
	if err == nil {
		v.Close()
	}
	return err
}

// TestOpenFIFO: a FIFO at the path is refused at once; the open used to
// wait forever for a writer.
func TestOpenFIFO(t *testing.T) {
	path := tempPath(t, "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range opens {
		t.Run(o.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- o.open(path, quiet()) }()
			var err error
			returned := false
			t.Cleanup(func() {
				if !returned {
					// Unblock the hung open with a writer, so that the test ends.
					if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						w.Close()
					}
					<-done
				}
			})
			testutil.WaitFor(t, testutil.Timeout(t)/4, "the open to return", func() string {
				select {
				case err = <-done:
					returned = true
					return ""
				default:
					return "still waiting"
				}
			})
			if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("open FIFO = %v, want ErrInvalid: not a regular file", err)
			}
		})
	}
}

// TestOpenHugeFile: a sparse file of a terabyte is refused before anything
// is allocated for it; reading it whole killed the process (out of memory).
func TestOpenHugeFile(t *testing.T) {
	path := tempPath(t, "huge.db")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, o := range opens {
		err := o.open(path, quiet())
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "MaxFileSize") {
			t.Errorf("%s(1 TiB sparse file) = %v, want ErrInvalid naming MaxFileSize", o.name, err)
		}
	}
	// The limit is the caller's.
	small := tempPath(t, "small.db")
	s := mustOpenStore(t, small, quiet())
	s.Close()
	cfg := quiet()
	cfg.MaxFileSize = 4096
	if err := opens[0].open(small, cfg); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("OpenStore with MaxFileSize 4096 = %v, want ErrInvalid", err)
	}
}

// TestOpenUnsafePlace: a writable open refuses a file another user could
// change: in a directory others may write (a shared /tmp), or another
// user's, through a symbolic link, or a file of another user. Read-only
// opens, for inspection, are not refused.
func TestOpenUnsafePlace(t *testing.T) {
	good := tempPath(t, "good.db")
	s := mustOpenStore(t, good, quiet())
	s.Close()
	content, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	type place struct {
		name  string
		root  bool // needs root, to give files to another user
		setup func(t *testing.T) string
	}
	places := []place{
		{"directory writable by others", false, func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "shared")
			mkdir(t, dir, 0o777|os.ModeSticky)
			return filepath.Join(dir, "snap.db")
		}},
		{"directory writable by its group", false, func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "group")
			mkdir(t, dir, 0o770)
			return filepath.Join(dir, "snap.db")
		}},
		{"symbolic link", false, func(t *testing.T) string {
			dir := t.TempDir()
			target := filepath.Join(dir, "target.db")
			if err := os.WriteFile(target, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, "snap.db")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "snap.db")
		}},
		{"directory of another user", true, func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "theirs")
			mkdir(t, dir, 0o755)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "snap.db")
		}},
		{"file of another user", true, func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "snap.db")
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, p := range places {
		t.Run(p.name, func(t *testing.T) {
			if p.root && os.Geteuid() != 0 {
				t.Skip("not root: cannot give files to another user")
			}
			path := p.setup(t)
			if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
				// A planted file: what another user would put there.
				if err := os.WriteFile(path, content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range opens[:2] {
				err := o.open(path, quiet())
				if !errors.Is(err, ErrUnsafe) || !errors.Is(err, registry.ErrInvalid) {
					t.Errorf("%s = %v, want ErrUnsafe", o.name, err)
				}
			}
			if err := opens[2].open(path, quiet()); err != nil {
				t.Errorf("read-only OpenStore = %v, want it to open", err)
			}
		})
	}
}

// TestOpenMakesFilePrivate: an existing file of this user that others may
// read or write (0666) is opened and made private (0600), with a warning.
func TestOpenMakesFilePrivate(t *testing.T) {
	path := tempPath(t, "snap.db")
	s := mustOpenStore(t, path, quiet())
	s.Close()
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg := Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s = mustOpenStore(t, path, cfg)
	s.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode after OpenStore = %v, want 0600", info.Mode())
	}
	if !strings.Contains(logs.String(), "made it private") || !strings.Contains(logs.String(), "-rw-rw-rw-") {
		t.Errorf("log = %q, want a warning naming the old mode", logs.String())
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}
