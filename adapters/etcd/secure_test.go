package etcd

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

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
