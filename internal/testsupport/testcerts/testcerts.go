// Package testcerts writes a throw-away PKI for TLS tests: a CA, a server
// certificate for 127.0.0.1 and localhost, and a client certificate, as
// PEM files.
package testcerts

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
)

// Set is the paths of a generated PKI.
type Set struct {
	Dir string
	// CA is the CA certificate (PEM).
	CA string
	// ServerCert and ServerKey are for 127.0.0.1, ::1 and localhost.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate (CN "client").
	ClientCert, ClientKey string
	// OtherCA is a second CA that signed nothing here: trusting it alone
	// must fail.
	OtherCA string
}

// Generate writes a new PKI into a temporary directory of tb.
func Generate(tb testing.TB) Set {
	tb.Helper()
	dir := tb.TempDir()
	s := Set{Dir: dir}
	caKey, caCert := newCA(tb, "regchain test CA")
	s.CA = writeCert(tb, dir, "ca.pem", caCert)
	_, other := newCA(tb, "other CA")
	s.OtherCA = writeCert(tb, dir, "other-ca.pem", other)
	srvKey, srvCert := issue(tb, caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	s.ServerCert = writeCert(tb, dir, "server.pem", srvCert)
	s.ServerKey = writeKey(tb, dir, "server-key.pem", srvKey)
	cliKey, cliCert := issue(tb, caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	s.ClientCert = writeCert(tb, dir, "client.pem", cliCert)
	s.ClientKey = writeKey(tb, dir, "client-key.pem", cliKey)
	return s
}

// ClientTLS returns a client configuration trusting the CA, with the
// client certificate when mutual is set.
func (s Set) ClientTLS(tb testing.TB, mutual bool) *tls.Config {
	tb.Helper()
	pemCA, err := os.ReadFile(s.CA)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if mutual {
		c, err := tls.LoadX509KeyPair(s.ClientCert, s.ClientKey)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

var serial int64

func newCA(tb testing.TB, name string) (*ecdsa.PrivateKey, *x509.Certificate) {
	key := newKey(tb)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

func issue(tb testing.TB, caKey *ecdsa.PrivateKey, ca, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate) {
	key := newKey(tb)
	serial++
	tmpl.SerialNumber = big.NewInt(serial + 1000)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func writeCert(tb testing.TB, dir, name string, c *x509.Certificate) string {
	return writePEM(tb, dir, name, "CERTIFICATE", c.Raw)
}

func writeKey(tb testing.TB, dir, name string, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return writePEM(tb, dir, name, "PRIVATE KEY", der)
}

func writePEM(tb testing.TB, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
