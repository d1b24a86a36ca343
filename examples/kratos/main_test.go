package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{
		"grpc: SERVING",
		"http: hello from greeter",
		"registered: greeter-1 v1.0.0 weight=100 endpoints=2",
		"etcd stopped",
		"grpc during the outage: SERVING",
		"http during the outage: hello from greeter",
		"new grpc client during the outage: SERVING",
		"drained in", // the BeforeStop hook (etcd is down: not waited for)
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
