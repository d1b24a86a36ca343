package main

import (
	"net/url"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testcerts"
	"github.com/regchain/regchain/internal/testsupport/zktest"
)

// regctl's TLS and auth flags against etcd with TLS, mutual TLS and
// user/password authentication.
func TestEtcdTLSFlags(t *testing.T) {
	pki := testcerts.Generate(t)
	target := func(endpoint string) string {
		u, err := url.Parse(endpoint)
		if err != nil {
			t.Fatal(err)
		}
		return "etcd://" + u.Host
	}
	t.Run("mTLS", func(t *testing.T) {
		reg := target(pki.EtcdTLS(t, true))
		r := wantCode(t, regctl(t, "-registry", reg, "-ca", pki.CA, "-cert", pki.ClientCert, "-key", pki.ClientKey, "ping"), 0)
		wantContains(t, "stdout", r.stdout, "ok: ")
		wantCode(t, regctl(t, "-registry", reg, "-timeout", "500ms", "-ca", pki.CA, "ping"), 1)
		// The same through URL parameters.
		wantCode(t, regctl(t, "-registry", reg+"?ca="+pki.CA+"&cert="+pki.ClientCert+"&key="+pki.ClientKey, "list"), 0)
	})
	t.Run("user", func(t *testing.T) {
		ep := pki.EtcdTLS(t, false)
		testcerts.EnableAuth(t, ep, pki.ClientTLS(t, false), "ops", "ops-secret")
		reg := target(ep)
		t.Setenv("REGCTL_PASSWORD", "ops-secret")
		wantCode(t, regctl(t, "-registry", reg, "-ca", pki.CA, "-user", "ops", "list"), 0)
		t.Setenv("REGCTL_PASSWORD", "wrong")
		r := wantCode(t, regctl(t, "-registry", reg, "-timeout", "2s", "-ca", pki.CA, "-user", "ops", "list"), 1)
		wantContains(t, "stderr", r.stderr, "username=ops")
	})
}

// regctl's TLS flags and digest user against ZooKeeper's secure client
// port with client authentication.
func TestZooKeeperTLSFlags(t *testing.T) {
	pki := testcerts.Generate(t)
	srv := zktest.StartTLS(t, zktest.TLSFiles{CA: pki.CA, Cert: pki.ServerCert, Key: pki.ServerKey, ClientAuth: true})
	reg := "zk://" + srv.TLSAddr + "?root=/regctl-tls"
	t.Setenv("REGCTL_PASSWORD", "digest-secret")
	r := wantCode(t, regctl(t, "-registry", reg, "-ca", pki.CA, "-cert", pki.ClientCert, "-key", pki.ClientKey, "-user", "ops", "ping"), 0)
	wantContains(t, "stdout", r.stdout, "ok: zk://", "user=ops")
	wantCode(t, regctl(t, "-registry", reg, "-timeout", "1s", "-ca", pki.CA, "list"), 1)
}

// regctl's -ca and -token flags against Consul over HTTPS with ACLs.
func TestConsulTLSFlags(t *testing.T) {
	pki := testcerts.Generate(t)
	agent := consultest.Start(t, consultest.Options{ACL: true,
		TLS: &consultest.TLSFiles{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CAFile: pki.CA}})
	reg := "consul://" + agent.HTTPSAddr
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	wantCode(t, regctl(t, "-registry", reg, "-ca", pki.CA, "-token", agent.Token, "list"), 0)
	r := wantCode(t, regctl(t, "-registry", reg, "-timeout", "2s", "-ca", pki.OtherCA, "-token", agent.Token, "list"), 1)
	wantContains(t, "stderr", r.stderr, "certificate")
}
