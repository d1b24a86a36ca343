package regconfig_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

const secret = "s3cret-XYZ"

// TestRedactDecodedKeys: a secret never shows in Parse's errors or in
// Redact, however its parameter is spelt. Redact matched only the exact
// spellings "password" and "token": pass%77ord= (which Parse decodes and
// uses), Password=, TOKEN= and misspellings were printed in clear, and an
// element that was no URL at all came back raw as its "scheme".
func TestRedactDecodedKeys(t *testing.T) {
	for _, spec := range []string{
		"etcd://h:1?pass%77ord=" + secret,
		"etcd://h:1?Password=" + secret,
		"consul://h:1?TOKEN=" + secret,
		"consul://h:1?tok%65n=" + secret + "&dc=x&dc=y",
		"etcd://h:1?pasword=" + secret,
		"etcd://h:1?password=" + secret,
		"etcd://h:1?password=" + secret + "%zz",
		"etcd://h:1?password=" + secret + ";x=1",
		"?password=" + secret + "://0",
		"password=" + secret + "://h:1",
		"token=" + secret,
		"etcd://h:1&password=" + secret,
		"etcd://h:1token=" + secret,
		"consul://h:1?dc=a&token=" + secret + "&x",
		"etcd://app:" + secret + "@h:1",
		"etcd://h:1?username=u&password=" + secret + "|bogus://h",
		"etcd://h:1?username=u&password=" + secret + "|consul://h:1?ttl=" + strings.Repeat("x", 500),
	} {
		_, err := regconfig.Parse(spec)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", spec)
			continue
		}
		if !errors.Is(err, registry.ErrInvalid) || strings.Contains(err.Error(), secret) || len(err.Error()) > 600 {
			t.Errorf("Parse(%q) = %q: want ErrInvalid, bounded, without the secret", spec, err)
		}
		if r := regconfig.Redact(spec); strings.Contains(r, secret) {
			t.Errorf("Redact(%q) = %q", spec, r)
		}
	}
	// Known parameters without secrets stay readable.
	if got := regconfig.Redact("etcd://h:1?namespace=/ms&password=x&password_file=/run/pw&ttl=5s"); got != "etcd://h:1?namespace=/ms&password=REDACTED&password_file=/run/pw&ttl=5s" {
		t.Errorf("Redact = %q", got)
	}
}

// TestConfigHidesSecrets: no fmt verb and no slog handler prints a
// Config's or a Backend's password or token (%#v and slog's JSON handler
// did).
func TestConfigHidesSecrets(t *testing.T) {
	c := regconfig.Config{Backends: []regconfig.Backend{
		{Type: "etcd", Endpoints: []string{"h:2379"}, Username: "app", Password: secret},
		{Type: "consul", Token: secret},
	}}
	testutil.NoSecret(t, secret, "Config", c)
	testutil.NoSecret(t, secret, "*Config", &c)
	testutil.NoSecret(t, secret, "Backend", c.Backends[0])
	testutil.NoSecret(t, secret, "*Backend", &c.Backends[1])
	if got := fmt.Sprintf("%+v", c.Backends[0]); !strings.Contains(got, "Username:app Password:REDACTED") {
		t.Errorf("%%+v = %s, want the fields with the password masked", got)
	}
	if got := fmt.Sprint(c); got != "etcd://h:2379?username=app|consul://" {
		t.Errorf("%%v = %s, want the compact form", got)
	}
}

// TestSecretFiles: a password or token file is read bounded, never a FIFO,
// and what it holds is never shown; a password and a password file
// together are refused.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		b    regconfig.Backend
		want string
	}{
		{regconfig.Backend{Type: "consul", TokenFile: fifo}, "not a regular file"},
		{regconfig.Backend{Type: "consul", TokenFile: filepath.Join(dir, "none")}, "no such file"},
		{regconfig.Backend{Type: "consul", TokenFile: empty}, "is empty"},
		{regconfig.Backend{Type: "etcd", Username: "u", PasswordFile: fifo}, "backend.password_file"},
		{regconfig.Backend{Type: "etcd", Username: "u", Password: "p", PasswordFile: empty}, "and a password: give one"},
	} {
		r, err := regconfig.OpenBackend(c.b, regconfig.WithLogger(quiet()))
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenBackend(%+v) = %v, want ErrInvalid saying %q", c.b, err, c.want)
		}
	}
	c, err := regconfig.Parse("etcd://h:1?username=u&password_file=/run/secrets/pw|consul://h:2?token_file=/run/secrets/t")
	if err != nil {
		t.Fatal(err)
	}
	if c.Backends[0].PasswordFile != "/run/secrets/pw" || c.Backends[1].TokenFile != "/run/secrets/t" {
		t.Errorf("Parse: %+v", c.Backends)
	}
	if s := c.String(); !strings.Contains(s, "password_file=/run/secrets/pw") || !strings.Contains(s, "token_file=/run/secrets/t") {
		t.Errorf("String = %s, want the files named", s)
	}
}
