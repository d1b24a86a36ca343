package regconfig_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testcerts"
)

// Consul over HTTPS with an ACL token, configured through regconfig: the
// right CA and token work; another CA, plain HTTP to the TLS port, or no
// token fail.
func TestConsulTLSAndToken(t *testing.T) {
	pki := testcerts.Generate(t)
	agent := consultest.Start(t, consultest.Options{ACL: true,
		TLS: &consultest.TLSFiles{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CA}})
	base := "consul://" + agent.HTTPSAddr + "?timeout=2s"
	if err := roundTrip(t, base+"&ca="+pki.CA+"&token="+agent.Token, true); err != nil {
		t.Errorf("with the CA and the token: %v", err)
	}
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(agent.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, base+"&ca="+pki.CA+"&token_file="+tok, true); err != nil {
		t.Errorf("with the CA and the token from a file: %v", err)
	}
	if err := roundTrip(t, base+"&ca="+pki.OtherCA+"&token="+agent.Token, false); err == nil {
		t.Error("trusting another CA worked")
	}
	if err := roundTrip(t, base+"&token="+agent.Token, false); err == nil {
		t.Error("plain HTTP to the HTTPS port worked")
	}
	if err := roundTrip(t, base+"&ca="+pki.CA, false); err == nil {
		t.Error("no token worked with ACLs on")
	}
}
