package zk_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/testcerts"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/internal/testsupport/zktest"
)

// tlsRoundTrip registers an instance over a registry with tlsCfg on addr,
// reads it back and deregisters it: within the test's wait bound when works
// (the connection must work), within 3 s when it must fail.
func tlsRoundTrip(t *testing.T, addr string, tlsCfg *tls.Config, works bool) error {
	t.Helper()
	r, err := zk.New(zk.Config{
		Servers: []string{addr}, TLS: tlsCfg, Namespace: "/tls-test",
		SessionTimeout: 4 * time.Second, Timeout: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer r.Close()
	bound := 3 * time.Second
	if works {
		bound = testutil.Timeout(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	return testutil.RoundTrip(ctx, r)
}

// ZooKeeper's secure client port: TLS with the right CA works, with
// another CA or in plain TCP it does not; with client authentication
// required, only a client with a certificate gets in.
func TestTLS(t *testing.T) {
	pki := testcerts.Generate(t)
	files := zktest.TLSFiles{CA: pki.CA, Cert: pki.ServerCert, Key: pki.ServerKey}
	t.Run("TLS", func(t *testing.T) {
		srv := zktest.StartTLS(t, files)
		if err := tlsRoundTrip(t, srv.TLSAddr, pki.ClientTLS(t, false), true); err != nil {
			t.Errorf("with the CA: %v", err)
		}
		other := pki.ClientTLS(t, false)
		other.RootCAs = nil
		other.ServerName = "localhost"
		if err := tlsRoundTrip(t, srv.TLSAddr, other, false); err == nil {
			t.Error("without trusting the CA worked")
		}
		if err := tlsRoundTrip(t, srv.TLSAddr, nil, false); err == nil {
			t.Error("plain TCP to the secure port worked")
		}
	})
	t.Run("mTLS", func(t *testing.T) {
		f := files
		f.ClientAuth = true
		srv := zktest.StartTLS(t, f)
		if err := tlsRoundTrip(t, srv.TLSAddr, pki.ClientTLS(t, true), true); err != nil {
			t.Errorf("with a client certificate: %v", err)
		}
		if err := tlsRoundTrip(t, srv.TLSAddr, pki.ClientTLS(t, false), false); err == nil {
			t.Error("without a client certificate worked")
		}
	})
}
