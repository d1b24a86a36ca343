package consul

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/consultest"
	"github.com/regchain/regchain/internal/testutil"
)

// testCA writes a CA and a server certificate for 127.0.0.1 into dir and
// returns their files and a pool holding the CA.
func testCA(t *testing.T, dir string) (*consultest.TLSFiles, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "regchain test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server.dc1.consul"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost", "server.dc1.consul"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := &consultest.TLSFiles{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	for path, block := range map[string]*pem.Block{
		files.CAFile:   {Type: "CERTIFICATE", Bytes: caDER},
		files.CertFile: {Type: "CERTIFICATE", Bytes: der},
		files.KeyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return files, pool
}

// TestTLS talks to the agent's HTTPS API with Config.TLS.
func TestTLS(t *testing.T) {
	files, pool := testCA(t, t.TempDir())
	a := consultest.Start(t, consultest.Options{TLS: files})
	cfg := testConfig(t, a.HTTPSAddr)
	cfg.TLS = &tls.Config{RootCAs: pool}
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
