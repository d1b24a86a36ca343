package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"))
}

// TestRun runs the example against a real kube-apiserver (the test fails,
// not skips, when the binary cannot be found or built) and checks what the
// reader saw at each step.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	want := []string{
		"both sides up: checkout has 4 instances [10.244.1.5:9000 10.244.2.7:9000 vm-1 vm-2] (source kubernetes+etcd)",
		"the API server killed: checkout has 4 instances [10.244.1.5:9000 10.244.2.7:9000 vm-1 vm-2] (source kubernetes+etcd, stale)",
		"past the max age: checkout has 2 instances [vm-1 vm-2] (source etcd)",
		"the API server back: checkout has 4 instances [10.244.1.5:9000 10.244.2.7:9000 vm-1 vm-2] (source kubernetes+etcd)",
		"etcd stopped: checkout has 4 instances [10.244.1.5:9000 10.244.2.7:9000 vm-1 vm-2] (source kubernetes+etcd, stale)",
		"past the max age: checkout has 2 instances [10.244.1.5:9000 10.244.2.7:9000] (source kubernetes)",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
