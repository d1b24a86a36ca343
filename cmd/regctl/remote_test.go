package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/regchain/regchain/admin"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// adminServer serves the admin handler of a chain over two Memory tiers,
// "etcd" (returned, to take down) and "consul", with greeter (in both) and
// billing (in etcd only) read.
func adminServer(t *testing.T, cfg admin.Config) (string, *registrytest.Memory, *chain.Chain) {
	t.Helper()
	etcdMem, consulMem := registrytest.NewMemoryNamed("etcd"), registrytest.NewMemoryNamed("consul")
	g := &registry.Instance{ID: "g-1", Name: "greeter", Endpoints: []string{"grpc://10.0.0.1:9000"}}
	for _, m := range []*registrytest.Memory{etcdMem, consulMem} {
		if err := m.Register(ctxT(t), g); err != nil {
			t.Fatal(err)
		}
	}
	if err := etcdMem.Register(ctxT(t), &registry.Instance{ID: "b-1", Name: "billing", Endpoints: []string{"http://10.0.0.2:80"}}); err != nil {
		t.Fatal(err)
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: etcdMem}, {Name: "consul", Registry: consulMem}},
		chain.WithLogger(quiet()), chain.WithProbeInterval(10*time.Millisecond), chain.WithFailureThreshold(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, name := range []string{"greeter", "billing"} {
		if _, err := c.GetService(ctxT(t), name); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Logger = quiet()
	mux := http.NewServeMux()
	mux.Handle("/admin/", admin.New(c, cfg))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/admin/", etcdMem, c
}

func TestStatusCommand(t *testing.T) {
	url, etcdMem, c := adminServer(t, admin.Config{Rules: admin.Rules{UnreadyAt: chain.L1}})

	r := wantCode(t, regctl(t, "status", url), exitOK)
	wantContains(t, "status", r.stdout, "level", "L0: all tiers healthy", "ready", "yes", "etcd", "UP", "greeter", "etcd", "1")

	etcdMem.SetAvailable(false)
	waitFor(t, 10*time.Second, func() bool { return !c.Status().Tiers[0].Up })
	r = wantCode(t, regctl(t, "status", url), exitNotReady)
	wantContains(t, "status", r.stdout, "L1", "tier etcd is down", "ready      no", "DOWN", "simulated outage")
	wantContains(t, "stderr", r.stderr, "not ready")

	r = wantCode(t, regctl(t, "-json", "status", url[len("http://"):len(url)-1]), exitNotReady) // no scheme, no slash
	var rep admin.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status -json: %v\n%s", err, r.stdout)
	}
	if rep.Level != chain.L1 || rep.Ready || rep.Tiers[0].Up {
		t.Errorf("status -json = level %v ready %v etcd up %v", rep.Level, rep.Ready, rep.Tiers[0].Up)
	}

	wantCode(t, regctl(t, "status"), exitUsage)
	wantCode(t, regctl(t, "status", "ftp://x/"), exitUsage)
	r = wantCode(t, regctl(t, "-timeout", "2s", "status", "http://127.0.0.1:1/admin/"), exitFail)
	wantContains(t, "stderr", r.stderr, "unreachable")
}

func TestMutationCommands(t *testing.T) {
	t.Run("disabled", func(t *testing.T) {
		url, _, c := adminServer(t, admin.Config{})
		r := wantCode(t, regctl(t, "freeze", url), exitRefused)
		wantContains(t, "stderr", r.stderr, "403", "mutations are disabled")
		if c.Frozen() {
			t.Error("frozen although mutations are disabled")
		}
	})
	t.Run("loopback", func(t *testing.T) {
		url, etcdMem, c := adminServer(t, admin.Config{Mutations: true})
		r := wantCode(t, regctl(t, "freeze", url), exitOK)
		wantContains(t, "stdout", r.stdout, "ok: freeze (frozen true, level L1)")
		if !c.Frozen() {
			t.Error("not frozen")
		}
		wantCode(t, regctl(t, "unfreeze", url), exitOK)
		if c.Frozen() {
			t.Error("still frozen")
		}
		r = wantCode(t, regctl(t, "release", url, "greeter"), exitFail)
		wantContains(t, "stderr", r.stderr, "404", "no held drop or rollback")
		wantCode(t, regctl(t, "release", url), exitUsage)

		// billing, only in etcd, stays rolled back while etcd is down.
		etcdMem.SetAvailable(false)
		waitFor(t, 10*time.Second, func() bool { return !c.Status().Tiers[0].Up })
		r = wantCode(t, regctl(t, "rollback", url, "billing"), exitOK)
		wantContains(t, "stdout", r.stdout, "ok: rollback billing")
		a, err := c.GetServiceWithInfo(context.Background(), "billing")
		if err != nil || a.Source != chain.SnapshotSource {
			t.Errorf("billing after rollback = %+v, %v; want the snapshot", a, err)
		}
		wantCode(t, regctl(t, "release", url, "billing"), exitOK)
	})
	t.Run("token", func(t *testing.T) {
		url, _, c := adminServer(t, admin.Config{Mutations: true, Token: "s3cret"})
		t.Setenv("REGCTL_TOKEN", "")
		r := wantCode(t, regctl(t, "freeze", url), exitRefused)
		wantContains(t, "stderr", r.stderr, "401", "REGCTL_TOKEN")
		t.Setenv("REGCTL_TOKEN", "wrong")
		wantCode(t, regctl(t, "freeze", url), exitRefused)
		t.Setenv("REGCTL_TOKEN", "s3cret")
		wantCode(t, regctl(t, "freeze", url), exitOK)
		if !c.Frozen() {
			t.Error("not frozen with the right token")
		}
	})
}
