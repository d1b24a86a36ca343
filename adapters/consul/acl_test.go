package consul

import (
	"errors"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// isDenied reports whether err is the clear ACL error: ErrPermissionDenied
// and ErrInvalid, not ErrUnavailable (no failover on a configuration error).
func isDenied(err error) bool {
	return errors.Is(err, ErrPermissionDenied) && errors.Is(err, registry.ErrInvalid) && !errors.Is(err, registry.ErrUnavailable)
}

// TestACL runs against an agent with ACLs on and default policy deny.
func TestACL(t *testing.T) {
	a := consultest.Start(t, consultest.Options{ACL: true})
	mgmt := a.Client(t)

	withToken := func(token string) *Registry {
		cfg := testConfig(t, a.Addr)
		cfg.Token = token
		return newRegistry(t, cfg)
	}
	admin := withToken(a.Token)

	t.Run("management token works", func(t *testing.T) {
		svc := "acl-any"
		in := instance(svc, "a1", 7400)
		if err := admin.Register(ctxT(t, 10*time.Second), in); err != nil {
			t.Fatalf("Register: %v", err)
		}
		waitFor(t, "GetService", recoverWithin, testutil.Sees(t, admin, svc, in))
		w, err := admin.Watch(ctxT(t, time.Minute), svc)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		until(t, w, svc, recoverWithin, in)
		if err := admin.Deregister(ctxT(t, 10*time.Second), in); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		until(t, w, svc, recoverWithin)
	})

	t.Run("unknown token", func(t *testing.T) {
		bad := withToken("00000000-1111-2222-3333-444444444444")
		in := instance("acl-bad", "b1", 7410)
		regErr := bad.Register(ctxT(t, 10*time.Second), in)
		if !isDenied(regErr) || !strings.Contains(regErr.Error(), "ACL not found") {
			t.Errorf("Register with an unknown token = %v; want ErrPermissionDenied saying \"ACL not found\"", regErr)
		}
		t.Logf("unknown token: %v", regErr)
		// Ping checks reachability, not the token.
		if err := bad.Ping(ctxT(t, 10*time.Second)); err != nil {
			t.Errorf("Ping with an unknown token = %v, want nil", err)
		}
		if _, err := bad.GetService(ctxT(t, 10*time.Second), "acl-any"); !isDenied(err) {
			t.Errorf("GetService with an unknown token = %v; want ErrPermissionDenied", err)
		}
		if _, err := bad.ListServices(ctxT(t, 10*time.Second)); !isDenied(err) {
			t.Errorf("ListServices with an unknown token = %v; want ErrPermissionDenied", err)
		}
		w, err := bad.Watch(ctxT(t, time.Minute), "acl-any")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if _, err := testutil.Next(t, w, recoverWithin); !isDenied(err) {
			t.Errorf("Watch with an unknown token: Next = %v; want ErrPermissionDenied", err)
		}
		if len(bad.Registrations()) != 0 {
			t.Errorf("a refused Register left a registration: %v", bad.Registrations())
		}
	})

	t.Run("read-only token", func(t *testing.T) {
		policy, _, err := mgmt.ACL().PolicyCreate(&consulapi.ACLPolicy{
			Name:  "regchain-acl-read-only",
			Rules: `service_prefix "" { policy = "read" }` + "\n" + `node_prefix "" { policy = "read" }`,
		}, nil)
		if err != nil {
			t.Fatalf("create policy: %v", err)
		}
		token, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{Policies: []*consulapi.ACLTokenPolicyLink{{ID: policy.ID}}}, nil)
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry { return withToken(token.SecretID) })
	})

	t.Run("limited token", func(t *testing.T) {
		policy, _, err := mgmt.ACL().PolicyCreate(&consulapi.ACLPolicy{
			Name:  "regchain-acl-test",
			Rules: `service_prefix "acl-allowed" { policy = "write" }` + "\n" + `node_prefix "" { policy = "read" }`,
		}, nil)
		if err != nil {
			t.Fatalf("create policy: %v", err)
		}
		token, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{Policies: []*consulapi.ACLTokenPolicyLink{{ID: policy.ID}}}, nil)
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		limited := withToken(token.SecretID)

		in := instance("acl-allowed-svc", "l1", 7420)
		if err := limited.Register(ctxT(t, 10*time.Second), in); err != nil {
			t.Fatalf("Register an allowed service: %v", err)
		}
		waitFor(t, "GetService", recoverWithin, testutil.Sees(t, limited, in.Name, in))
		// The heartbeat works with the token: fail the check behind its
		// back and wait for it to pass again.
		if err := mgmt.Agent().UpdateTTL(checkID(in.ID), "failed by the test", consulapi.HealthCritical); err != nil {
			t.Fatalf("fail the check: %v", err)
		}
		waitFor(t, "check critical", recoverWithin, testutil.Sees(t, admin, in.Name))
		d := waitFor(t, "check passing again by the heartbeat", recoverWithin, testutil.Sees(t, limited, in.Name, in))
		t.Logf("heartbeat with a limited token passed the check again after %v", d)

		denied := instance("acl-denied-svc", "l2", 7430)
		err = limited.Register(ctxT(t, 10*time.Second), denied)
		if !isDenied(err) || !strings.Contains(err.Error(), "service:write") {
			t.Errorf("Register a service outside the policy = %v; want ErrPermissionDenied naming service:write", err)
		}
		t.Logf("limited token, denied service: %v", err)

		secret := instance("acl-secret-svc", "s1", 7440)
		if err := admin.Register(ctxT(t, 10*time.Second), secret); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "secret registered", recoverWithin, testutil.Sees(t, admin, secret.Name, secret))
		if _, err := limited.GetService(ctxT(t, 10*time.Second), secret.Name); !isDenied(err) {
			t.Errorf("GetService of a service the token may not read = %v; want ErrPermissionDenied", err)
		}

		// Watchers sharing the registry's hub: the service the token may
		// not read looks empty (Consul filters it out, no error), and the
		// watchers of readable services are not disturbed.
		watch := func(name string) registry.Watcher {
			w, err := limited.Watch(ctxT(t, time.Minute), name)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Stop() })
			return w
		}
		wSecret, wAllowed, wAll := watch(secret.Name), watch(in.Name), watch("")
		if u, err := testutil.Next(t, wSecret, recoverWithin); err != nil || u.Service != secret.Name || len(u.Instances) != 0 {
			t.Errorf("watching a service the token may not read: Next = %v, %v; want an empty state", u, err)
		}
		until(t, wAllowed, in.Name, recoverWithin, in)
		in2 := instance("acl-allowed-two", "l3", 7450)
		if err := limited.Register(ctxT(t, 10*time.Second), in2); err != nil {
			t.Fatal(err)
		}
		st := make(state)
		follow(t, wAll, st, recoverWithin, holds(map[string][]*registry.Instance{in.Name: {in}, in2.Name: {in2}}))
		if got, ok := st[secret.Name]; ok {
			t.Errorf("the watch-all of the limited token delivered %s: %v", secret.Name, got)
		}
	})
}
