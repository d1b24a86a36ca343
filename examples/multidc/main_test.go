package main

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// go-micro's packages start goroutines when imported: those are ignored,
// anything the drill starts is not.
func TestMain(m *testing.M) {
	slog.SetDefault(quiet)
	os.Exit(testutil.MainIgnoringImports(m, nil))
}

// TestDrillShort runs the drill's kill of dc-a and its failback to the
// end and checks what it prints: a line per reader and client kind after
// each step, in the documented form. Timings and counts are the drill's to
// measure, not the test's to assert.
func TestDrillShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, true); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	line := regexp.MustCompile(`^    reader in (dc-a|dc-b), (grpc|kratos|go-micro): +\d+ failed calls, ` +
		`(all traffic (back )?on dc-[ab] (throughout|\d+\.\d\ds after (the kill|dc-a came back))|traffic not all .*) ` +
		`\(slowest call \d+\.\d\ds\)`)
	steps := []string{"killing datacenter dc-a", "bringing dc-a back"}
	got := map[string]int{}
	step := ""
	for _, l := range strings.Split(out.String(), "\n") {
		for _, s := range steps {
			if strings.Contains(l, s) {
				step = s
			}
		}
		if strings.HasPrefix(l, "    reader in") {
			if !line.MatchString(l) {
				t.Errorf("line not in the documented form: %q", l)
			}
			got[step]++
		}
	}
	for _, s := range steps {
		if got[s] != 6 {
			t.Errorf("after %q: %d reader lines, want 6 (2 readers x 3 client kinds)", s, got[s])
		}
	}
	if !strings.Contains(out.String(), "drill done") {
		t.Error("the drill did not say it was done")
	}
}
