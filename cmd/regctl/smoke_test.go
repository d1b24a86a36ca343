package main

import (
	"encoding/json"
	"testing"

	"github.com/regchain/regchain/adapters/consul"
	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/registry"
)

// register registers fleet() and closes reg when the test ends.
func register(t *testing.T, reg registry.Registry) {
	t.Helper()
	t.Cleanup(func() { reg.Close() })
	for _, in := range fleet() {
		if err := reg.Register(ctxT(t), in); err != nil {
			t.Fatal(err)
		}
	}
}

// getJSON runs get -json and returns the instances.
func getJSON(t *testing.T, args ...string) []*registry.Instance {
	t.Helper()
	r := wantCode(t, regctl(t, append(args, "-json", "get", "greeter")...), 0)
	var got []*registry.Instance
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	return got
}

func TestZooKeeper(t *testing.T) {
	t.Parallel()
	srv := zktest.Start(t)
	reg, err := zk.New(zk.Config{Servers: []string{srv.Addr}, Namespace: "/regctl", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	register(t, reg)
	url := "zk://" + srv.Addr + "?root=/regctl"

	r := wantCode(t, regctl(t, "-registry", url, "list"), 0)
	if want := "billing\ngreeter\n"; r.stdout != want {
		t.Errorf("list = %q, want %q", r.stdout, want)
	}
	if got, want := getJSON(t, "-registry", url), fleet()[:2]; !registry.EqualInstances(got, want) {
		t.Errorf("get -json = %v, want %v", got, want)
	}
	r = wantCode(t, regctl(t, "-registry", url, "watch", "-count", "1", "greeter"), 0)
	wantContains(t, "watch", r.stdout, " service=greeter source=zookeeper ", " count=2 ids=g-1,g-2\n")
	r = wantCode(t, regctl(t, "-registry", url, "ping"), 0)
	wantContains(t, "ping", r.stdout, "ok: "+url)
	// Another root holds other services: none here.
	r = wantCode(t, regctl(t, "-registry", "zk://"+srv.Addr+"?root=/elsewhere", "get", "greeter"), 1)
	wantContains(t, "get under another root", r.stderr, ": not found: ")
}

// The Consul agent runs with ACLs (default deny): the token comes from the
// URL or from $CONSUL_HTTP_TOKEN, and without one nothing is visible.
func TestConsul(t *testing.T) {
	agent := consultest.Start(t, consultest.Options{ACL: true})
	reg, err := consul.New(consul.Config{Address: agent.Addr, Token: agent.Token, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	register(t, reg)
	url := "consul://" + agent.Addr

	t.Setenv("CONSUL_HTTP_TOKEN", "")
	r := wantCode(t, regctl(t, "-registry", url, "get", "greeter"), 1)
	wantContains(t, "get without a token", r.stderr, `get "greeter" on `+url+": not found: ")

	if got, want := getJSON(t, "-registry", url+"?token="+agent.Token), fleet()[:2]; !registry.EqualInstances(got, want) {
		t.Errorf("get -json = %v, want %v", got, want)
	}

	t.Setenv("CONSUL_HTTP_TOKEN", agent.Token)
	r = wantCode(t, regctl(t, "-registry", url, "list"), 0)
	wantContains(t, "list", r.stdout, "billing\n", "greeter\n")
	r = wantCode(t, regctl(t, "-registry", url, "watch", "-count", "1", "greeter"), 0)
	wantContains(t, "watch", r.stdout, " service=greeter source=consul ", " count=2 ids=g-1,g-2\n")
	r = wantCode(t, regctl(t, "-registry", url, "ping"), 0)
	wantContains(t, "ping", r.stdout, "ok: "+url)
	r = wantCode(t, regctl(t, "-registry", url+"?dc=nosuchdc", "get", "greeter"), 1)
	wantContains(t, "get in an unknown datacenter", r.stderr, `get "greeter" on `+url+"?dc=nosuchdc: unavailable: ", "No path to datacenter")
}
