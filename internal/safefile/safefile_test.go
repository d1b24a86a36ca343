//go:build unix

package safefile_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/internal/safefile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := safefile.ReadFile(small, 5); err != nil || string(b) != "hello" {
		t.Errorf("ReadFile(small, 5) = %q, %v", b, err)
	}
	if _, err := safefile.ReadFile(small, 4); !errors.Is(err, safefile.ErrTooLarge) {
		t.Errorf("ReadFile(small, 4) = %v, want ErrTooLarge", err)
	}
	// A sparse file of a terabyte is refused before anything is allocated.
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := safefile.ReadFile(sparse, 1<<20); !errors.Is(err, safefile.ErrTooLarge) {
		t.Errorf("ReadFile(sparse) = %v, want ErrTooLarge", err)
	}
	// A FIFO without a writer: refused at once, not a hang.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.ReadFile(fifo, 1<<20); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("ReadFile(fifo) = %v, want ErrNotRegular", err)
	}
	if _, err := safefile.ReadFile(dir, 1<<20); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("ReadFile(dir) = %v, want ErrNotRegular", err)
	}
	if _, err := safefile.ReadFile("/dev/zero", 1<<20); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("ReadFile(/dev/zero) = %v, want ErrNotRegular", err)
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	if err := safefile.CheckDir(dir); err != nil {
		t.Errorf("CheckDir(own 0700 dir) = %v", err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o770, 0o707, 0o777 | os.ModeSticky} {
		if err := os.Chmod(shared, mode); err != nil {
			t.Fatal(err)
		}
		if err := safefile.CheckDir(shared); !errors.Is(err, safefile.ErrUnsafe) {
			t.Errorf("CheckDir(mode %v) = %v, want ErrUnsafe", mode, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot give a directory to another user")
	}
	if err := os.Chmod(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(shared, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := safefile.CheckDir(shared); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("CheckDir(another user's dir) = %v, want ErrUnsafe", err)
	}
}

func TestPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fixed, err := safefile.Private(f); err != nil || fixed != 0 {
		t.Errorf("Private(0600) = %v, %v", fixed, err)
	}
	if err := f.Chmod(0o666); err != nil {
		t.Fatal(err)
	}
	if fixed, err := safefile.Private(f); err != nil || fixed != 0o666 {
		t.Errorf("Private(0666) = %v, %v; want it fixed from 0666", fixed, err)
	}
	if info, _ := f.Stat(); info.Mode().Perm() != 0o600 {
		t.Errorf("mode after Private = %v, want 0600", info.Mode())
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot give a file to another user")
	}
	if err := f.Chown(65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := safefile.Private(f); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("Private(another user's file) = %v, want ErrUnsafe", err)
	}
}
