package deprecated

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAlias(t *testing.T) {
	for _, tc := range []struct {
		cur, old, want time.Duration
		err            bool
	}{
		{0, 0, 0, false},
		{time.Second, 0, time.Second, false},
		{0, time.Second, time.Second, false},
		{time.Second, time.Second, time.Second, false},
		{time.Second, 2 * time.Second, 0, true},
	} {
		got, err := Alias("x", "Timeout", tc.cur, "RequestTimeout", tc.old)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Alias(%v, %v) = %v, %v; want %v, error %v", tc.cur, tc.old, got, err, tc.want, tc.err)
		}
		if err != nil && (!errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "Timeout") || !strings.Contains(err.Error(), "RequestTimeout")) {
			t.Errorf("error %q: want ErrInvalid naming both fields", err)
		}
	}
}
