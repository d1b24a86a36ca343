package zk

import (
	"crypto/tls"
	"net"
	"time"
)

// handshake runs the TLS client handshake on c within timeout. Without a
// ServerName in cfg, the host of address is checked against the server's
// certificate. It closes c on failure.
func handshake(c net.Conn, address string, timeout time.Duration, cfg *tls.Config) (net.Conn, error) {
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		if host, _, err := net.SplitHostPort(address); err == nil {
			cfg.ServerName = host
		}
	}
	tc := tls.Client(c, cfg)
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}
