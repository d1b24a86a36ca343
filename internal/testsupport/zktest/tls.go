package zktest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TLSFiles are the PEM files of a TLS server (package internal/testcerts
// writes them).
type TLSFiles struct {
	// CA is the CA certificate the server trusts for client certificates.
	CA string
	// Cert and Key are the server's certificate and PKCS#8 key.
	Cert, Key string
	// ClientAuth makes the server require a client certificate.
	ClientAuth bool
}

// StartTLS is Start with a secure client port as well: Netty, TLS with
// f's server certificate (PEM key and trust stores), on TLSAddr. The plain
// port stays open (Addr).
func StartTLS(t testing.TB, f TLSFiles) *Server {
	t.Helper()
	s, err := newServer(t.TempDir(), func(s *Server) (string, error) { return tlsConfig(s, f) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("zktest: stop: %v", err)
		}
	})
	return s
}

func tlsConfig(s *Server, f TLSFiles) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.tls = true
	// ZooKeeper's PEM key store is the key and the certificate in one file.
	key, err := os.ReadFile(f.Key)
	if err != nil {
		return "", err
	}
	cert, err := os.ReadFile(f.Cert)
	if err != nil {
		return "", err
	}
	store := filepath.Join(s.dir, "keystore.pem")
	if err := os.WriteFile(store, append(key, cert...), 0o600); err != nil {
		return "", err
	}
	auth := "none"
	if f.ClientAuth {
		auth = "need"
	}
	return fmt.Sprintf(`serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
secureClientPort=%d
secureClientPortAddress=127.0.0.1
ssl.keyStore.location=%s
ssl.keyStore.type=PEM
ssl.trustStore.location=%s
ssl.trustStore.type=PEM
ssl.clientAuth=%s
ssl.hostnameVerification=false
`, port, store, f.CA, auth), nil
}

// nettyJars are the Netty pieces ZooKeeper's Netty server needs beyond
// what Debian's zookeeper.jar manifest names.
var nettyJars = []string{"netty-codec.jar", "netty-resolver.jar", "netty-transport-native-unix-common.jar"}

// classpath returns the JVM class path: ZooKeeper and its logger, and
// Netty for a server with a secure client port.
func (s *Server) classpath() string {
	cp := []string{Jar, logJar}
	if s.tls {
		for _, j := range nettyJars {
			cp = append(cp, filepath.Join(filepath.Dir(Jar), j))
		}
	}
	return strings.Join(cp, string(os.PathListSeparator))
}
