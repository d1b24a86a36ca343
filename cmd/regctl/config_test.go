package main

import (
	"os"
	"path/filepath"
	"testing"
)

// -registry takes the whole compact form of package regconfig: here a
// static tier from a file, read through a chain.
func TestRegistryChainForm(t *testing.T) {
	dir := t.TempDir()
	peers := filepath.Join(dir, "peers.json")
	if err := os.WriteFile(peers, []byte(`[{"id":"s1","name":"greeter","version":"v1","metadata":null,"endpoints":["grpc://10.9.0.1:9000"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := "static://" + peers + "|chain:?name=regctl"
	r := wantCode(t, regctl(t, "-registry", spec, "get", "greeter"), 0)
	wantContains(t, "stdout", r.stdout, "s1", "grpc://10.9.0.1:9000")
	r = wantCode(t, regctl(t, "-registry", spec, "list"), 0)
	wantContains(t, "stdout", r.stdout, "greeter")
}

// The TLS and auth flags reach the backends; a bad one is a usage error
// naming the setting, or a failure naming the file.
func TestConnectionFlags(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-registry", "etcd://127.0.0.1:1", "-cert", "c.pem", "list"}, 2, "cert_file and key_file go together"},
		{[]string{"-registry", "etcd://127.0.0.1:1", "-ca", filepath.Join(dir, "none.pem"), "list"}, 1, "backends[0].tls.ca_file"},
		{[]string{"-registry", "consul://127.0.0.1:1", "-user", "u", "-tls", "-ca", filepath.Join(dir, "none.pem"), "list"}, 1, "backends[0].tls.ca_file"},
	}
	for _, c := range cases {
		r := wantCode(t, regctl(t, c.args...), c.code)
		wantContains(t, "stderr", r.stderr, c.msg)
	}
}
