package consultest

import (
	"errors"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartRestart checks that an agent serves requests, that Restart keeps
// its address and loses its state (dev mode), and that ACL agents refuse
// anonymous writes but accept the management token.
func TestStartRestart(t *testing.T) {
	a := Start(t, Options{})
	c := a.Client(t)
	reg := &consulapi.AgentServiceRegistration{ID: "x1", Name: "consultest-svc", Port: 1}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, _, err := c.Agent().Service("x1", nil); err != nil {
		t.Fatalf("service after register: %v", err)
	}
	addr := a.Addr
	start := time.Now()
	a.Restart(t)
	t.Logf("restart took %v", time.Since(start))
	if a.Addr != addr || !a.Running() {
		t.Fatalf("after Restart: addr %s running %v, want %s running", a.Addr, a.Running(), addr)
	}
	_, _, err := c.Agent().Service("x1", nil)
	var se consulapi.StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("service after restart: %v, want a 404 (dev mode forgets)", err)
	}
	a.Stop()
	if a.Running() {
		t.Error("Running after Stop")
	}
	a.Stop() // idempotent
}

func TestACL(t *testing.T) {
	a := Start(t, Options{ACL: true})
	if a.Token == "" {
		t.Fatal("ACL agent without a token")
	}
	reg := &consulapi.AgentServiceRegistration{ID: "x1", Name: "consultest-acl", Port: 1}
	anon, tr, err := a.newClient("")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	var se consulapi.StatusError
	if err := anon.Agent().ServiceRegister(reg); !errors.As(err, &se) || se.Code != 403 {
		t.Errorf("anonymous register: %v, want a 403", err)
	}
	if err := a.Client(t).Agent().ServiceRegister(reg); err != nil {
		t.Errorf("register with the management token: %v", err)
	}
}

// Wipe and Stop+Resume both bring the agent back empty on the same address.
func TestWipeResume(t *testing.T) {
	a := Start(t, Options{})
	c := a.Client(t)
	reg := &consulapi.AgentServiceRegistration{ID: "w1", Name: "consultest-wipe", Port: 1}
	for _, fault := range []struct {
		name string
		do   func()
	}{
		{"Wipe", func() { a.Wipe(t) }},
		{"Stop+Resume", func() { a.Stop(); a.Resume(t) }},
	} {
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatalf("%s: register: %v", fault.name, err)
		}
		addr := a.Addr
		fault.do()
		if a.Addr != addr || !a.Running() {
			t.Fatalf("after %s: addr %s running %v, want %s running", fault.name, a.Addr, a.Running(), addr)
		}
		_, _, err := c.Agent().Service("w1", nil)
		var se consulapi.StatusError
		if !errors.As(err, &se) || se.Code != 404 {
			t.Errorf("after %s: service = %v, want a 404 (dev mode keeps nothing)", fault.name, err)
		}
	}
	a.Resume(t) // running: nothing to do
}
