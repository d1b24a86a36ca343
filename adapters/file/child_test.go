package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

func runChild(job, path string) error {
	switch job {
	case "hold":
		return childHold(path)
	case "full-registry":
		return childFullRegistry(path)
	case "full-store":
		return childFullStore(path)
	}
	return fmt.Errorf("unknown job %q", job)
}

// childHold opens path, says "ready" and holds it until stdin is closed.
func childHold(path string) error {
	r, err := Open(path, quiet())
	if err != nil {
		return err
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return r.Close()
}

// limitFileSize sets the soft RLIMIT_FSIZE of this process (0: back to the
// hard limit). Writes that would grow a file beyond it fail with EFBIG, as
// on a full disk; Go ignores the SIGXFSZ that comes with them.
func limitFileSize(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if n > 0 {
		lim.Cur = n
	}
	return syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim)
}

func fileSize(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return uint64(fi.Size()), nil
}

// bigInstance needs more room than a small file has.
func bigInstance(svc, id string) *registry.Instance {
	in := inst(svc, id, 7)
	for i := range 100 {
		in.Metadata[fmt.Sprintf("blob%03d", i)] = strings.Repeat("x", 2000)
	}
	return in
}

func firstRevision(r *Registry, svc string) (int64, error) {
	w, err := r.Watch(context.Background(), svc)
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	u, err := w.Next()
	if err != nil {
		return 0, err
	}
	return u.Revision, nil
}

// checkState checks what r holds for svc and its revision.
func checkState(r *Registry, svc string, rev int64, want ...*registry.Instance) error {
	got, err := r.GetService(context.Background(), svc)
	if err != nil {
		return fmt.Errorf("GetService: %w", err)
	}
	if !registry.EqualInstances(got, want) {
		return fmt.Errorf("GetService = %v, want %v", got, want)
	}
	if got, err := firstRevision(r, svc); err != nil || got != rev {
		return fmt.Errorf("revision = %d, %v; want %d", got, err, rev)
	}
	return nil
}

func childFullRegistry(path string) error {
	ctx := context.Background()
	r, err := Open(path, quiet())
	if err != nil {
		return err
	}
	small, big := inst("svc", "a1", 1), bigInstance("svc", "big")
	if err := r.Register(ctx, small); err != nil {
		return fmt.Errorf("first Register: %w", err)
	}
	size, err := fileSize(path)
	if err != nil {
		return err
	}
	if err := limitFileSize(size); err != nil {
		return err
	}
	err = r.Register(ctx, big)
	if err == nil {
		return fmt.Errorf("Register beyond the file size limit of %d bytes succeeded", size)
	}
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "file too large") {
		return fmt.Errorf("Register beyond the limit: error %q, want ErrUnavailable and EFBIG", err)
	}
	fmt.Println("register error:", err)
	// Memory is unchanged, and the registry still works for writes that fit.
	if err := checkState(r, "svc", 1, small); err != nil {
		return fmt.Errorf("after the failed write: %w", err)
	}
	if err := r.Deregister(ctx, small); err != nil {
		return fmt.Errorf("Deregister after the failed write: %w", err)
	}
	if err := r.Register(ctx, small); err != nil {
		return fmt.Errorf("Register after the failed write: %w", err)
	}
	if err := r.Close(); err != nil {
		return err
	}
	// The file holds what memory held (opening an intact file writes
	// nothing, so it works under the limit).
	r, err = Open(path, quiet())
	if err != nil {
		return fmt.Errorf("reopen under the limit: %w", err)
	}
	if err := checkState(r, "svc", 3, small); err != nil {
		return fmt.Errorf("reopened after the failed write: %w", err)
	}
	if err := limitFileSize(0); err != nil {
		return err
	}
	if err := r.Register(ctx, big); err != nil {
		return fmt.Errorf("Register once there is room: %w", err)
	}
	if err := r.Close(); err != nil {
		return err
	}
	if r, err = Open(path, quiet()); err != nil {
		return err
	}
	defer r.Close()
	return checkState(r, "svc", 4, small, big)
}

func childFullStore(path string) error {
	ctx := context.Background()
	s, err := OpenStore(path, quiet())
	if err != nil {
		return err
	}
	first := fleet(3, 2)
	if err := s.SaveSnapshot(ctx, first); err != nil {
		return fmt.Errorf("first save: %w", err)
	}
	size, err := fileSize(path)
	if err != nil {
		return err
	}
	if err := limitFileSize(size); err != nil {
		return err
	}
	second := fleet(200, 10) // replaces the first three, adds 197
	err = s.SaveSnapshot(ctx, second)
	if err == nil {
		return fmt.Errorf("SaveSnapshot beyond the file size limit of %d bytes succeeded", size)
	}
	if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), "file too large") {
		return fmt.Errorf("SaveSnapshot beyond the limit: error %q, want ErrUnavailable and EFBIG", err)
	}
	fmt.Println("save error:", err)
	if err := checkEntries(s, first); err != nil {
		return fmt.Errorf("after the failed save: %w", err)
	}
	if err := s.Close(); err != nil {
		return err
	}
	if s, err = OpenStore(path, quiet()); err != nil {
		return fmt.Errorf("reopen under the limit: %w", err)
	}
	if err := checkEntries(s, first); err != nil {
		return fmt.Errorf("reopened after the failed save: %w", err)
	}
	if err := limitFileSize(0); err != nil {
		return err
	}
	if err := s.SaveSnapshot(ctx, second); err != nil {
		return fmt.Errorf("save once there is room: %w", err)
	}
	defer s.Close()
	return checkEntries(s, second)
}

// checkEntries checks that s holds exactly want (services, sources,
// revisions, times, instances).
func checkEntries(s *Store, want []*registry.Update) error {
	got, err := s.LoadSnapshot(context.Background())
	if err != nil {
		return fmt.Errorf("LoadSnapshot: %w", err)
	}
	if len(got) != len(want) {
		return fmt.Errorf("LoadSnapshot returned %d entries, want %d", len(got), len(want))
	}
	byName := make(map[string]*registry.Update, len(want))
	for _, u := range want {
		byName[u.Service] = u
	}
	for _, e := range got {
		w := byName[e.Update.Service]
		if err := sameUpdate(e.Update, w); err != nil {
			return err
		}
	}
	return nil
}

func sameUpdate(got, want *registry.Update) error {
	switch {
	case want == nil:
		return fmt.Errorf("unexpected entry %q", got.Service)
	case got.Service != want.Service, got.Source != want.Source, got.Revision != want.Revision, !got.Time.Equal(want.Time):
		return fmt.Errorf("entry = {%q %q %d %v}, want {%q %q %d %v}",
			got.Service, got.Source, got.Revision, got.Time, want.Service, want.Source, want.Revision, want.Time)
	case !registry.EqualInstances(got.Instances, want.Instances):
		return fmt.Errorf("entry %q instances = %v, want %v", got.Service, got.Instances, want.Instances)
	}
	return nil
}

func runChildTest(t *testing.T, job, path string) {
	t.Helper()
	cmd := child(t, job, path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v\n%s", job, err, out.String())
	}
	t.Logf("child %s:\n%s", job, out.String())
}

// TestFullDiskRegistry writes under RLIMIT_FSIZE in a child process: the
// write that does not fit fails with ErrUnavailable, memory and file keep
// the previous state, and writes work again once there is room.
func TestFullDiskRegistry(t *testing.T) {
	runChildTest(t, "full-registry", tempPath(t, "reg.db"))
}

// TestFullDiskStore: a save that does not fit fails and the previous
// snapshot is intact, in memory and after reopening.
func TestFullDiskStore(t *testing.T) {
	runChildTest(t, "full-store", tempPath(t, "snap.db"))
}

func TestLockHeldByAnotherProcess(t *testing.T) {
	path := tempPath(t, "reg.db")
	cmd := child(t, "hold", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("child said %q, %v; stderr:\n%s", line, err, stderr.String())
	}

	const timeout = 200 * time.Millisecond
	for name, open := range map[string]func() error{
		"Open":      func() error { r, err := Open(path, Config{Timeout: timeout}); closeIf(r); return err },
		"OpenStore": func() error { s, err := OpenStore(path, Config{Timeout: timeout}); closeIf(s); return err },
		"read-only": func() error { r, err := Open(path, Config{Timeout: timeout, ReadOnly: true}); closeIf(r); return err },
	} {
		start := time.Now()
		err := open()
		took := time.Since(start)
		if !errors.Is(err, ErrLocked) || !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("%s of a file another process holds: error %v, want ErrLocked and ErrUnavailable", name, err)
		}
		if took < timeout/2 || took > timeout+2*time.Second {
			t.Errorf("%s gave up after %v, want about %v", name, took, timeout)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	r := mustOpen(t, path, quiet())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func closeIf(c io.Closer) {
	switch c := c.(type) {
	case *Registry:
		if c != nil {
			c.Close()
		}
	case *Store:
		if c != nil {
			c.Close()
		}
	}
}
