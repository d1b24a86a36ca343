package zk_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/registry"
)

// recoveryTimeout bounds every wait for a fault to be repaired.
const recoveryTimeout = 30 * time.Second

// live returns "" once every registration of r is live.
func live(r *zk.Registry, n int) func() string {
	return func() string {
		regs := r.Registrations()
		if len(regs) != n {
			return "registrations: " + describeRegs(regs)
		}
		for _, s := range regs {
			if !s.Live {
				return "not live: " + describeRegs(regs)
			}
		}
		return ""
	}
}

// nodePath is where the Registry with this root keeps in.
func nodePath(root string, in *registry.Instance) string {
	return root + "/" + in.Name + "/" + in.ID
}

func describeRegs(regs []registry.RegistrationState) string {
	out := ""
	for _, s := range regs {
		out += s.Instance.String()
		if s.Live {
			out += "(live) "
		} else {
			out += fmt.Sprintf("(pending, attempts %d, last error: %v) ", s.Attempts, s.LastError)
		}
	}
	return "[" + out + "]"
}

// Someone deletes our node: the keeper's watch fires and it is put back, in
// the same session.
func TestNodeDeletedIsRestored(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	r := newRegistry(t, nil, zk.Config{Namespace: root})
	in := instance("deleted", "d1", 7000)
	register(t, r, in)
	o := srv.Connect(t, 2*time.Second)
	p := nodePath(root, in)
	want, _ := registry.Marshal(in)
	_, st, err := o.Get(p)
	if err != nil {
		t.Fatalf("observer Get %s: %v", p, err)
	}
	owner := st.EphemeralOwner

	start := time.Now()
	if err := o.Delete(p, -1); err != nil {
		t.Fatalf("observer Delete: %v", err)
	}
	testutil.WaitFor(t, recoveryTimeout, "node restored", func() string {
		return nodeState(o, p, want, func(o int64) bool { return o == owner })
	})
	t.Logf("RECOVERY node deleted behind our back: restored in %v", time.Since(start))
	testutil.WaitFor(t, recoveryTimeout, "registration live", live(r, 1))
}

// Someone overwrites our node's data: the keeper's data watch fires and the
// data is written back.
func TestDataOverwrittenIsRestored(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	r := newRegistry(t, nil, zk.Config{Namespace: root})
	in := instance("overwritten", "o1", 7100)
	register(t, r, in)
	o := srv.Connect(t, 2*time.Second)
	p := nodePath(root, in)
	want, _ := registry.Marshal(in)

	for _, junk := range []string{`{"id":"o1","name":"overwritten","version":"evil","endpoints":["grpc://6.6.6.6:1"]}`, "not json at all"} {
		start := time.Now()
		if _, err := o.Set(p, []byte(junk), -1); err != nil {
			t.Fatalf("observer Set: %v", err)
		}
		testutil.WaitFor(t, recoveryTimeout, "data restored", func() string { return nodeState(o, p, want, nil) })
		t.Logf("RECOVERY data overwritten (%.20q...): restored in %v", junk, time.Since(start))
	}
	got, err := r.GetService(ctxT(t, 10*time.Second), in.Name)
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{in}) {
		t.Fatalf("GetService after restore = %v, %v; want [%v]", got, err, in)
	}
}

// A partition longer than the session timeout: ZooKeeper expires the
// session and deletes the node; after healing, go-zookeeper gets a new
// session, the registration is re-created and the watcher resumes.
func TestSessionExpiry(t *testing.T) {
	srv := server(t)
	px, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	root := uniqueRoot(t)
	r := newRegistry(t, nil, zk.Config{Namespace: root, Servers: []string{px.Addr()}, SessionTimeout: time.Second, Timeout: 2 * time.Second})
	in := instance("expiry", "e1", 7200)
	register(t, r, in)
	w, err := r.Watch(ctxT(t, time.Minute), in.Name)
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	n.until(recoveryTimeout, in.Name, in)

	o := srv.Connect(t, 2*time.Second)
	p := nodePath(root, in)
	want, _ := registry.Marshal(in)
	_, st, err := o.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	oldOwner := st.EphemeralOwner

	px.Partition()
	cut := time.Now()
	expired := testutil.WaitFor(t, recoveryTimeout, "server expires the partitioned session", func() string {
		if ok, _, err := o.Exists(p); err != nil || ok {
			return "node still there"
		}
		return ""
	})
	t.Logf("partition: ZooKeeper expired the session and deleted the node after %v (session timeout 1s)", expired)
	// Hold the partition a little longer than the expiry itself.
	testutil.WaitFor(t, recoveryTimeout, "partition outlasts session", func() string {
		if time.Since(cut) < 1500*time.Millisecond {
			return "partitioned for " + time.Since(cut).String()
		}
		return ""
	})

	px.Heal()
	healed := time.Now()
	d := testutil.WaitFor(t, recoveryTimeout, "node re-created by a new session", func() string {
		return nodeState(o, p, want, func(owner int64) bool { return owner != oldOwner })
	})
	t.Logf("RECOVERY session expiry (partition %v): node re-created %v after heal", healed.Sub(cut).Round(time.Millisecond), d)
	testutil.WaitFor(t, recoveryTimeout, "registration live", live(r, 1))

	// The watcher resumed: it sees an instance registered by someone else.
	other := newRegistry(t, nil, zk.Config{Namespace: root})
	in2 := instance("expiry", "e2", 7210)
	register(t, other, in2)
	n.until(recoveryTimeout, in.Name, in, in2)
	t.Logf("RECOVERY session expiry: watcher delivered the new state %v after heal", time.Since(healed))
}

// The server is killed and restarted on the same port and data directory.
func TestServerRestart(t *testing.T) {
	srv := zktest.Start(t)
	root := uniqueRoot(t)
	r := newRegistry(t, srv, zk.Config{Namespace: root, SessionTimeout: 2 * time.Second})
	in := instance("restart", "r1", 7300)
	register(t, r, in)
	w, err := r.Watch(ctxT(t, time.Minute), in.Name)
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	n.until(recoveryTimeout, in.Name, in)

	start := time.Now()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	t.Logf("server killed and back (accepting sessions) in %v", up)
	pinged := testutil.WaitFor(t, recoveryTimeout, "Ping", func() string {
		if err := r.Ping(ctxT(t, time.Second)); err != nil {
			return err.Error()
		}
		return ""
	})
	t.Logf("RECOVERY server restart: Ping answers %v after the server is back", pinged)

	// A second instance registered now shares the first one's session: both
	// nodes must exist and have the same owner (the old session may have
	// survived the restart, or expired and been replaced).
	in2 := instance("restart", "r2", 7310)
	register(t, r, in2)
	o := srv.Connect(t, 2*time.Second)
	want1, _ := registry.Marshal(in)
	want2, _ := registry.Marshal(in2)
	d := testutil.WaitFor(t, recoveryTimeout, "both nodes owned by the current session", func() string {
		_, st, err := o.Get(nodePath(root, in2))
		if err != nil {
			return err.Error()
		}
		if why := nodeState(o, nodePath(root, in2), want2, nil); why != "" {
			return why
		}
		return nodeState(o, nodePath(root, in), want1, func(owner int64) bool { return owner == st.EphemeralOwner })
	})
	n.until(recoveryTimeout, in.Name, in, in2)
	testutil.WaitFor(t, recoveryTimeout, "registrations live", live(r, 2))
	t.Logf("RECOVERY server restart: registrations and watcher current %v after the server is back (%v after the kill; nodes confirmed after %v)", time.Since(start)-up, time.Since(start), d)
}

// Registering while ZooKeeper is unreachable: Register returns
// ErrUnavailable, keeps the registration pending, and it goes live once the
// server is reachable; reads fail with ErrUnavailable within their ctx.
func TestStartWhileDown(t *testing.T) {
	srv := server(t)
	px, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	px.Refuse(true)
	r := newRegistry(t, nil, zk.Config{Servers: []string{px.Addr()}, Timeout: time.Second})
	in := instance("down", "x1", 7400)

	start := time.Now()
	err = r.Register(ctxT(t, 5*time.Second), in)
	if !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Register while down = %v, want ErrUnavailable", err)
	}
	t.Logf("Register while down returned in %v: %v", time.Since(start), err)
	for name, call := range map[string]func() error{
		"Ping":         func() error { return r.Ping(ctxT(t, 300*time.Millisecond)) },
		"GetService":   func() error { _, err := r.GetService(ctxT(t, 300*time.Millisecond), in.Name); return err },
		"ListServices": func() error { _, err := r.ListServices(ctxT(t, 300*time.Millisecond)); return err },
	} {
		start := time.Now()
		if err := call(); !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("%s while down = %v, want ErrUnavailable", name, err)
		} else if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s while down took %v, ctx allowed 300ms", name, d)
		}
	}
	regs := r.Registrations()
	if len(regs) != 1 || regs[0].Live || regs[0].Attempts == 0 || regs[0].LastError == nil {
		t.Fatalf("Registrations while down = %s, want one pending with attempts and an error", describeRegs(regs))
	}
	w, err := r.Watch(ctxT(t, time.Minute), in.Name)
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	select {
	case res := <-n.ch:
		if !errors.Is(res.err, registry.ErrUnavailable) {
			t.Fatalf("first Next while down = %v, %v; want a transient ErrUnavailable", res.u, res.err)
		}
	case <-time.After(recoveryTimeout):
		t.Fatal("Next while down did not report the failure")
	}

	px.Refuse(false)
	up := time.Now()
	d := testutil.WaitFor(t, recoveryTimeout, "registration live", live(r, 1))
	n.until(recoveryTimeout, in.Name, in)
	t.Logf("RECOVERY server reachable again: registration live in %v, watcher current in %v", d, time.Since(up))
}

// A connection passed in Config.Client stays open after Close, and so do its
// nodes.
func TestProvidedConnLeftOpen(t *testing.T) {
	srv := server(t)
	conn := srv.Connect(t, 2*time.Second)
	root := uniqueRoot(t)
	r, err := zk.New(zk.Config{Client: conn, Namespace: root, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	in := instance("provided", "p1", 7500)
	register(t, r, in)
	p := nodePath(root, in)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if conn.State() != gozk.StateHasSession {
		t.Fatalf("conn state after Close = %v, want it still open", conn.State())
	}
	want, _ := registry.Marshal(in)
	if why := nodeState(conn, p, want, func(o int64) bool { return o == conn.SessionID() }); why != "" {
		t.Fatalf("after Close: %s", why)
	}
}

// A server that accepts connections and never answers (a partition while
// connecting): calls end with ErrUnavailable within their ctx, and Close
// does not wait for go-zookeeper's handshake timeout.
func TestCloseWhileHandshakeHangs(t *testing.T) {
	srv := server(t)
	px, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	px.Partition()
	r, err := zk.New(zk.Config{Servers: []string{px.Addr()}, SessionTimeout: 4 * time.Second, Namespace: uniqueRoot(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Ping(ctxT(t, 300*time.Millisecond)); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
	if err := r.Register(ctxT(t, 300*time.Millisecond), instance("hang", "h1", 8300)); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Register = %v, want ErrUnavailable", err)
	}
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// gozk's own handshake timeout here is 10 × 2/3 × 4 s ≈ 27 s.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	} else {
		t.Logf("Close with a hung handshake took %v", d)
	}
}
