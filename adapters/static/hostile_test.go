//go:build unix

package static_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/static"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// lockedBuffer is a log sink safe for the reload goroutine and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// returns runs fn in a goroutine and fails the test if it has not returned
// well within the test's time; a FIFO that fn hangs on is then given a
// writer, so that the test ends.
func returns(t *testing.T, fifo string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	returned := false
	t.Cleanup(func() {
		if !returned {
			if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			<-done
		}
	})
	testutil.WaitFor(t, testutil.Timeout(t)/4, "the call to return", func() string {
		select {
		case <-done:
			returned = true
			return ""
		default:
			return "still waiting"
		}
	})
}

// TestFIFO: a FIFO as the file is refused by New at once, and one renamed
// over the file is ignored by the reload loop, which Close still ends.
// Both hung on the FIFO's open.
func TestFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	returns(t, fifo, func() {
		var r *static.Registry
		if r, err = static.New(static.Config{File: fifo, Logger: quiet()}); err == nil {
			r.Close()
		}
	})
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("New(FIFO) = %v, want ErrInvalid: not a regular file", err)
	}

	path := filepath.Join(dir, "peers.json")
	writeJSON(t, path, []*registry.Instance{inst("greeter", "a", "10.0.0.1:9000")})
	var logs lockedBuffer
	r, err := static.New(static.Config{File: path, PollInterval: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Should the reload loop hang on the FIFO, give it a writer.
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		r.Close()
	})
	testutil.WaitFor(t, testutil.Timeout(t)/4, "a reload warning", testutil.Until(func() bool {
		return strings.Contains(logs.String(), "not a regular file")
	}))
	returns(t, path, func() { r.Close() })
}

// TestHugeFile: a file over MaxFileSize is refused before it is read, and
// a decoding error quotes the file's content bounded and escaped.
func TestHugeFile(t *testing.T) {
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse.json")
	if err := os.WriteFile(sparse, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, 1<<40); err != nil {
		t.Fatal(err)
	}
	if _, err := static.New(static.Config{File: sparse}); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "too large") {
		t.Errorf("New(1 TiB file) = %v, want ErrInvalid: too large", err)
	}
	odd := filepath.Join(dir, "odd.json")
	key := strings.Repeat(`\u001b]0;owned\u0007`, 10000)
	if err := os.WriteFile(odd, []byte(`[{"`+key+`":1}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := static.New(static.Config{File: odd})
	if !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("New(unknown field) = %v, want ErrInvalid", err)
	}
	if msg := err.Error(); len(msg) > 400 || strings.ContainsAny(msg, "\x1b\x07") {
		t.Errorf("error is %d bytes or holds control characters: %.200q", len(msg), msg)
	}
}
