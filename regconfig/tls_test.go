package regconfig_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/testsupport/testcerts"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/regconfig"
)

// roundTrip opens spec, registers an instance, reads it back and closes:
// within the test's wait bound when works (the settings must work), within
// 3 s when they must fail.
func roundTrip(t *testing.T, spec string, works bool) error {
	t.Helper()
	c, err := regconfig.Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%q): %v", spec, err)
	}
	r, err := regconfig.Open(c, regconfig.WithLogger(quiet()))
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

func hostOf(t *testing.T, endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// etcd over TLS, mutual TLS and with user/password, configured from files
// through regconfig: the right settings work, each wrong one fails.
func TestEtcdTLSAndAuth(t *testing.T) {
	pki := testcerts.Generate(t)
	base := func(endpoint string) string {
		return "etcd://" + hostOf(t, endpoint) + "?timeout=1s&namespace=/tls-test"
	}
	t.Run("TLS", func(t *testing.T) {
		ep := pki.EtcdTLS(t, false)
		if err := roundTrip(t, base(ep)+"&ca="+pki.CA, true); err != nil {
			t.Errorf("with the CA: %v", err)
		}
		if err := roundTrip(t, base(ep)+"&ca="+pki.OtherCA, false); err == nil {
			t.Error("trusting another CA worked")
		}
		if err := roundTrip(t, base(ep), false); err == nil {
			t.Error("plain TCP to a TLS server worked")
		}
	})
	t.Run("mTLS", func(t *testing.T) {
		ep := pki.EtcdTLS(t, true)
		if err := roundTrip(t, base(ep)+"&ca="+pki.CA+"&cert="+pki.ClientCert+"&key="+pki.ClientKey, true); err != nil {
			t.Errorf("with a client certificate: %v", err)
		}
		if err := roundTrip(t, base(ep)+"&ca="+pki.CA, false); err == nil {
			t.Error("without a client certificate worked")
		}
	})
	t.Run("user and password", func(t *testing.T) {
		ep := pki.EtcdTLS(t, false)
		testcerts.EnableAuth(t, ep, pki.ClientTLS(t, false), "app", "app-secret")
		tls := "&ca=" + pki.CA
		if err := roundTrip(t, base(ep)+tls+"&username=app&password=app-secret", true); err != nil {
			t.Errorf("with the password: %v", err)
		}
		pw := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(pw, []byte("app-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, base(ep)+tls+"&username=app&password_file="+pw, true); err != nil {
			t.Errorf("with the password from a file: %v", err)
		}
		err := roundTrip(t, base(ep)+tls+"&username=app&password=wrong", false)
		if err == nil {
			t.Error("a wrong password worked")
		} else if strings.Contains(err.Error(), "wrong") {
			t.Errorf("the error shows the password: %v", err)
		}
		if err := roundTrip(t, base(ep)+tls, false); err == nil {
			t.Error("no credentials worked")
		}
		t.Setenv("APP_ETCD_PW", "app-secret")
		c := regconfig.Config{Backends: []regconfig.Backend{{Type: "etcd", Endpoints: []string{hostOf(t, ep)},
			Username: "app", PasswordEnv: "APP_ETCD_PW", Timeout: regconfig.Duration(5 * time.Second), TLS: regconfig.TLS{CAFile: pki.CA}}}}
		if err := roundTrip(t, c.String()+"&password=app-secret", true); err != nil {
			t.Errorf("String() form plus password: %v", err)
		}
		r, err := regconfig.Open(c, regconfig.WithLogger(quiet()))
		if err != nil {
			t.Fatalf("password from the environment: %v", err)
		}
		defer r.Close()
		if _, err := r.ListServices(context.Background()); err != nil {
			t.Errorf("password from the environment: %v", err)
		}
	})
}
