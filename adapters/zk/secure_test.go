package zk_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/testutil"
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

// TestPasswordHidden: no fmt verb and no slog handler prints the digest
// password of a Config or of an open Registry.
func TestPasswordHidden(t *testing.T) {
	cfg := zk.Config{Servers: []string{"127.0.0.1:1"}, Username: "app", Password: "s3cret-pw"}
	testutil.NoSecret(t, "s3cret-pw", "zk.Config", cfg)
	testutil.NoSecret(t, "s3cret-pw", "*zk.Config", &cfg)
	r, err := zk.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	testutil.NoSecret(t, "s3cret-pw", "*zk.Registry", r)
}
