package consul

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// TestTLSWithPlainHTTP: TLS together with http (Scheme or the Address's
// scheme) is an error instead of a guess.
func TestTLSWithPlainHTTP(t *testing.T) {
	for _, cfg := range []Config{
		{Address: "h:8500", Scheme: "http", TLS: &tls.Config{}},
		{Address: "http://h:8500", TLS: &tls.Config{}},
		{Address: "HTTP://h:8500", Scheme: "https"},
	} {
		r, err := New(cfg)
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "TLS is set and so is http") {
			t.Errorf("New(%s %s, TLS %v) = %v, want ErrInvalid", cfg.Scheme, cfg.Address, cfg.TLS != nil, err)
		}
	}
	for _, cfg := range []Config{{Address: "h:8500", TLS: &tls.Config{}}, {Address: "https://h:8500", TLS: &tls.Config{}}, {Address: "http://h:8500"}} {
		r, err := New(cfg)
		if err != nil {
			t.Errorf("New(%s %s) = %v", cfg.Scheme, cfg.Address, err)
			continue
		}
		r.Close()
	}
}

// TestTokenHidden: no fmt verb and no slog handler prints the ACL token of
// a Config or of an open Registry (%+v of an open Registry did).
func TestTokenHidden(t *testing.T) {
	cfg := Config{Address: "127.0.0.1:1", Token: "s3cret-token"}
	testutil.NoSecret(t, "s3cret-token", "consul.Config", cfg)
	testutil.NoSecret(t, "s3cret-token", "*consul.Config", &cfg)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	testutil.NoSecret(t, "s3cret-token", "*consul.Registry", r)
}
