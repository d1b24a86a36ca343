package consul

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testcerts"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

// TestTLS talks to the agent's HTTPS API with Config.TLS.
func TestTLS(t *testing.T) {
	pki := testcerts.Generate(t)
	a := consultest.Start(t, consultest.Options{TLS: &consultest.TLSFiles{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CA}})
	cfg := testConfig(t, a.HTTPSAddr)
	cfg.TLS = pki.ClientTLS(t, false)
	r := newRegistry(t, cfg)
	if err := r.Ping(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("Ping over TLS: %v", err)
	}
	in := instance("tls-svc", "t1", 7950)
	if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatalf("Register over TLS: %v", err)
	}
	waitFor(t, "GetService over TLS", recoverWithin, testutil.Sees(t, r, in.Name, in))
	w, err := r.Watch(ctxT(t, time.Minute), in.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	until(t, w, in.Name, recoverWithin, in)

	// Without the CA the server is not trusted.
	cfg.TLS = &tls.Config{}
	untrusting := newRegistry(t, cfg)
	if err := untrusting.Ping(ctxT(t, 10*time.Second)); err == nil {
		t.Error("Ping without the CA succeeded")
	}
}
