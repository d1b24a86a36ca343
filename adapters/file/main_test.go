package file

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/registry"
)

// Some tests re-run the test binary as a child process (to hold a lock from
// another process, or to write under a file size limit): childEnv names
// the child's job, childPathEnv its file.
const (
	childEnv     = "REGCHAIN_FILE_TEST_CHILD"
	childPathEnv = "REGCHAIN_FILE_TEST_PATH"
)

func TestMain(m *testing.M) {
	if job := os.Getenv(childEnv); job != "" {
		if err := runChild(job, os.Getenv(childPathEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "child %s: %v\n", job, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// child returns a command running job on path in a child process.
func child(t *testing.T, job, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+job, childPathEnv+"="+path)
	return cmd
}

func quiet() Config { return Config{Logger: slog.New(slog.DiscardHandler)} }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func tempPath(t testing.TB, name string) string {
	return filepath.Join(t.TempDir(), name)
}

// inst returns a realistic instance: two endpoints, three metadata keys.
func inst(svc, id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:      id,
		Name:    svc,
		Version: "v1.4.2",
		Metadata: map[string]string{
			"weight": "100",
			"zone":   "eu-west-1a",
			"build":  fmt.Sprintf("b%06d", port),
		},
		Endpoints: []string{
			fmt.Sprintf("grpc://10.0.%d.%d:9000?isSecure=false", port/250%250, port%250),
			fmt.Sprintf("http://10.0.%d.%d:8000", port/250%250, port%250),
		},
	}
}

// fleet returns services updates of perService instances each.
func fleet(services, perService int) []*registry.Update {
	now := time.Now()
	out := make([]*registry.Update, services)
	for s := range out {
		name := fmt.Sprintf("svc-%04d.example", s)
		u := &registry.Update{Service: name, Source: "etcd", Revision: int64(1000 + s), Time: now.Add(-time.Duration(s) * time.Second)}
		for i := range perService {
			u.Instances = append(u.Instances, inst(name, fmt.Sprintf("%s-%02d", name, i), s*perService+i))
		}
		out[s] = u
	}
	return out
}

func mustOpen(t testing.TB, path string, cfg Config) *Registry {
	t.Helper()
	r, err := Open(path, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return r
}

func mustOpenStore(t testing.TB, path string, cfg Config) *Store {
	t.Helper()
	s, err := OpenStore(path, cfg)
	if err != nil {
		t.Fatalf("OpenStore(%s): %v", path, err)
	}
	return s
}
