package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun plays the quickstart against its in-process etcd and checks the
// timeline's key lines, in order.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("timeline:\n%s", out.String())
	want := []string{
		"etcd started on",
		"watch greeter: [g1 g2] from etcd",
		"etcd stopped",
		"watch greeter: [g1 g2] from snapshot",
		"GetService(greeter) with etcd down: [g1 g2]",
		"1 registration pending",
		"etcd started",
		"watch greeter: [g1 g2 g3] from etcd",
		"etcd holds [g1 g2 g3]: registrations restored (0 pending); greeter served from etcd again",
		"drained in",
		"etcd holds []; safe to stop serving",
	}
	text := out.String()
	for _, w := range want {
		i := strings.Index(text, w)
		if i < 0 {
			t.Fatalf("timeline lacks %q (or has it out of order)", w)
		}
		text = text[i+len(w):]
	}
}
