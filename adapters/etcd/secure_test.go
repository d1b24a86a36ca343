package etcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// TestTLSWithPlainEndpoint: TLS with an http:// endpoint is an error; the
// client talked plaintext to it, password included. Credentials in an
// endpoint URL are one too.
func TestTLSWithPlainEndpoint(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"http with TLS", Config{Endpoints: []string{"https://a:2379", "http://b:2379"}, TLS: &tls.Config{}}, "endpoint 1 is http://"},
		{"HTTP with TLS", Config{Endpoints: []string{"HTTP://b:2379"}, TLS: &tls.Config{}}, "endpoint 0 is http://"},
		{"user info", Config{Endpoints: []string{"https://app:s3cret@b:2379"}}, "user info"},
	} {
		r, err := New(c.cfg)
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: New = %v, want ErrInvalid saying %q", c.name, err, c.want)
		}
	}
	for _, eps := range [][]string{{"b:2379"}, {"https://b:2379"}, {"unixs://b:2379"}} {
		r, err := New(Config{Endpoints: eps, TLS: &tls.Config{}})
		if err != nil {
			t.Errorf("New(%v with TLS) = %v", eps, err)
			continue
		}
		r.Close()
	}
}

// TestConfigHidesPassword: no fmt verb and no slog handler prints the
// password of a Config (%#v and slog's JSON handler did).
func TestConfigHidesPassword(t *testing.T) {
	cfg := Config{Endpoints: []string{"h:2379"}, Username: "app", Password: "s3cret-pw"}
	testutil.NoSecret(t, "s3cret-pw", "etcd.Config", cfg)
	testutil.NoSecret(t, "s3cret-pw", "*etcd.Config", &cfg)
	if got := fmt.Sprintf("%+v", cfg); !strings.Contains(got, "Username:app Password:REDACTED") {
		t.Errorf("%%+v = %s, want the fields with the password masked", got)
	}
}
