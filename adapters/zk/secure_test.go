package zk_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/registry"
)

// TestServerURL: a server written as a URL is an error; with TLS set an
// http:// one says plaintext, which ZooKeeper would not do.
func TestServerURL(t *testing.T) {
	for _, cfg := range []zk.Config{
		{Servers: []string{"h:2281", "http://h2:2281"}, TLS: &tls.Config{}},
		{Servers: []string{"zk://h:2181"}},
	} {
		r, err := zk.New(cfg)
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "is a URL") {
			t.Errorf("New(%v) = %v, want ErrInvalid: a URL", cfg.Servers, err)
		}
	}
}
