package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
)

func TestMirrorUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"mirror"}, "mirror takes a destination registry URL and an origin name, got 0"},
		{[]string{"mirror", "etcd://h:1"}, "got 1"},
		{[]string{"mirror", "etcd://h:1", " "}, "empty origin name"},
		{[]string{"mirror", "file:///x.db", "dc"}, "file:// destination is opened read-only"},
		{[]string{"mirror", "h:1", "dc"}, "want SCHEME://ADDRESS"},
		{[]string{"mirror", "etcd://h:1", "dc", "bad/name"}, `service "bad/name"`},
		{[]string{"-json", "mirror", "etcd://h:1", "dc"}, "-json does not apply to mirror"},
	} {
		r := wantCode(t, regctl(t, tc.args...), exitUsage)
		wantContains(t, strings.Join(tc.args, " "), r.stderr, tc.msg)
	}
}

// regctl mirror between two etcd servers: records show up at the
// destination marked with the origin, and are withdrawn on interrupt.
func TestMirrorEtcd(t *testing.T) {
	a, err := embedetcd.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	b, err := embedetcd.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	open := func(srv *embedetcd.Server) *etcd.Registry {
		r, err := etcd.New(etcd.Config{Endpoints: []string{srv.Endpoint()}, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	regA, regB := open(a), open(b)
	for _, in := range fleet() {
		if err := regA.Register(ctxT(t), in); err != nil {
			t.Fatal(err)
		}
	}
	bg := start(t, "-registry", "etcd://"+a.Endpoint(), "mirror", "etcd://"+b.Endpoint(), "dc-a", "greeter")
	greeterAtB := func() string {
		ins, err := regB.GetService(ctxT(t), "greeter")
		if errors.Is(err, registry.ErrNotFound) {
			return "none"
		}
		if err != nil {
			return err.Error()
		}
		var s []string
		for _, in := range ins {
			s = append(s, in.ID+"<"+mirror.Origin(in)+">")
		}
		return strings.Join(s, " ")
	}
	testutil.WaitFor(t, 30*time.Second, "greeter mirrored to b", func() string {
		if got := greeterAtB(); got != "g-1<dc-a> g-2<dc-a>" {
			return got
		}
		return ""
	})
	if _, err := regB.GetService(ctxT(t), "billing"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("billing (not selected) at b: err %v, want ErrNotFound", err)
	}
	bg.cancel()
	if code := bg.wait(t, 15*time.Second); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, bg.stderr.String())
	}
	wantContains(t, "stdout", bg.stdout.String(), "mirror stopped: 2 registered, 2 deregistered")
	if got := greeterAtB(); got != "none" {
		t.Errorf("after interrupt, greeter at b = %s, want none", got)
	}
}
