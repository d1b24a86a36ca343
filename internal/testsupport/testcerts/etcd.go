package testcerts

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EtcdTLS starts an embedded etcd serving clients over TLS with the set's
// server certificate; with mutual set it also requires a client
// certificate signed by the CA. It returns the client endpoint
// ("https://127.0.0.1:port") and stops the server when the test ends.
func (s Set) EtcdTLS(tb testing.TB, mutual bool) string {
	tb.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "tls"
	cfg.Dir = tb.TempDir()
	client := url.URL{Scheme: "https", Host: freeAddr(tb)}
	peer := url.URL{Scheme: "http", Host: freeAddr(tb)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.ClientTLSInfo.CertFile = s.ServerCert
	cfg.ClientTLSInfo.KeyFile = s.ServerKey
	if mutual { // with a trusted CA file etcd asks every client for a certificate
		cfg.ClientTLSInfo.TrustedCAFile = s.CA
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	cfg.BcryptCost = 4 // bcrypt.MinCost: password checks in milliseconds
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("start TLS etcd: %v", err)
	}
	tb.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		tb.Fatal("TLS etcd not ready within 30s")
	}
	return client.String()
}

// EnableAuth turns on etcd's authentication with a root user and a user
// that may read and write every key, through a client using tlsCfg.
func EnableAuth(tb testing.TB, endpoint string, tlsCfg *tls.Config, user, password string) {
	tb.Helper()
	cfg := clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: tlsCfg}
	cli, err := clientv3.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "app"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "app", "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, "app"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			tb.Fatalf("enable auth, step %d: %v", i, err)
		}
	}
}

func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprintf("127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port)
}
