package redact_test

import (
	"fmt"
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type cfg struct {
	User     string
	Password string
}

type rawCfg cfg

func (c cfg) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.masked()) }
func (c cfg) LogValue() slog.Value          { return redact.LogValue(c.masked()) }
func (c cfg) masked() any {
	type cfg rawCfg
	m := cfg(c)
	m.Password = redact.Secret(m.Password)
	return m
}

func TestFormat(t *testing.T) {
	c := cfg{User: "app", Password: "s3cret"}
	testutil.NoSecret(t, "s3cret", "cfg", c)
	testutil.NoSecret(t, "s3cret", "*cfg", &c)
	for verb, want := range map[string]string{
		"%v":  "{app REDACTED}",
		"%+v": "{User:app Password:REDACTED}",
		"%#v": `redact_test.cfg{User:"app", Password:"REDACTED"}`,
	} {
		if got := fmt.Sprintf(verb, c); got != want {
			t.Errorf("%s = %s, want %s", verb, got, want)
		}
	}
	if got := fmt.Sprintf("%+v", cfg{User: "app"}); got != "{User:app Password:}" {
		t.Errorf("unset password: %s", got)
	}
}
