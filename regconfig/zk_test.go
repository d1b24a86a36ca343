package regconfig_test

import (
	"testing"

	"github.com/regchain/regchain/internal/testsupport/testcerts"
	"github.com/regchain/regchain/internal/testsupport/zktest"
)

// ZooKeeper's secure client port with mutual TLS and digest credentials,
// configured through regconfig.
func TestZooKeeperTLSAndDigest(t *testing.T) {
	pki := testcerts.Generate(t)
	srv := zktest.StartTLS(t, zktest.TLSFiles{CA: pki.CA, Cert: pki.ServerCert, Key: pki.ServerKey, ClientAuth: true})
	base := "zk://" + srv.TLSAddr + "?timeout=3s&root=/regconfig-tls&user=app&password=digest-secret"
	if err := roundTrip(t, base+"&ca="+pki.CA+"&cert="+pki.ClientCert+"&key="+pki.ClientKey, true); err != nil {
		t.Errorf("with TLS and digest: %v", err)
	}
	if err := roundTrip(t, base+"&ca="+pki.CA, false); err == nil {
		t.Error("without a client certificate worked")
	}
}
