package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := `watch: greeter has 0 instance(s) [] (source file, revision 0)
watch: greeter has 1 instance(s) [g1] (source file, revision 1)
watch: greeter has 2 instance(s) [g1 g2] (source file, revision 2)
register without a scheme: ErrInvalid=true
watch: greeter has 1 instance(s) [g1] (source file, revision 3)
after reopening the file: [g1] at [grpc://127.0.0.1:9001]
unknown service: ErrNotFound=true
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}
