package zk_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	kratos "github.com/go-kratos/kratos/v2/registry"
	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// With digest credentials, our nodes are readable by anyone and writable or
// deletable only with the credentials.
func TestDigestACL(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	r := newRegistry(t, nil, zk.Config{Namespace: root, Username: "svc", Password: "s3cret"})
	in := instance("guarded", "g1", 7600)
	register(t, r, in)
	p := nodePath(root, in)
	svcPath := root + "/" + in.Name
	want, _ := registry.Marshal(in)

	anon := srv.Connect(t, 2*time.Second)
	// Readable without credentials.
	if data, _, err := anon.Get(p); err != nil || string(data) != string(want) {
		t.Fatalf("anonymous Get = %q, %v; want %q", data, err, want)
	}
	for _, node := range []string{root, svcPath, p} {
		acl, _, err := anon.GetACL(node)
		if err != nil {
			t.Fatalf("GetACL %s: %v", node, err)
		}
		// ZooKeeper masks the digest in GetACL ("svc:x").
		if len(acl) != 2 || acl[0].Perms != gozk.PermAll || acl[0].Scheme != "digest" || !strings.HasPrefix(acl[0].ID, "svc:") ||
			acl[1] != gozk.WorldACL(gozk.PermRead)[0] {
			t.Errorf("ACL of %s = %v, want digest svc ALL + world READ", node, acl)
		}
	}
	// Not writable, not deletable, nothing can be added under the service.
	if _, err := anon.Set(p, []byte("junk"), -1); !errors.Is(err, gozk.ErrNoAuth) {
		t.Errorf("anonymous Set = %v, want ErrNoAuth", err)
	}
	if err := anon.Delete(p, -1); !errors.Is(err, gozk.ErrNoAuth) {
		t.Errorf("anonymous Delete = %v, want ErrNoAuth", err)
	}
	if _, err := anon.Create(svcPath+"/intruder", []byte("{}"), gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); !errors.Is(err, gozk.ErrNoAuth) {
		t.Errorf("anonymous Create under the service = %v, want ErrNoAuth", err)
	}
	// Wrong credentials are no better.
	wrong := srv.Connect(t, 2*time.Second)
	if err := wrong.AddAuth("digest", []byte("svc:guess")); err != nil {
		t.Fatal(err)
	}
	if err := wrong.Delete(p, -1); !errors.Is(err, gozk.ErrNoAuth) {
		t.Errorf("Delete with a wrong password = %v, want ErrNoAuth", err)
	}
	if data, _, _ := anon.Get(p); string(data) != string(want) {
		t.Fatalf("node changed by unauthorised clients: %q", data)
	}

	// A Registry without credentials discovers the instance...
	reader := newRegistry(t, nil, zk.Config{Namespace: root})
	got, err := reader.GetService(ctxT(t, 10*time.Second), in.Name)
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{in}) {
		t.Fatalf("GetService without credentials = %v, %v; want [%v]", got, err, in)
	}
	// ...but cannot register into the guarded service: that is an answer
	// (ErrNoAuth, an ErrInvalid), not an outage, and nothing is kept to be
	// retried.
	in2 := instance("guarded", "g2", 7610)
	err = reader.Register(ctxT(t, 10*time.Second), in2)
	if !errors.Is(err, gozk.ErrNoAuth) || !errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Register without credentials = %v, want ErrNoAuth and ErrInvalid, not ErrUnavailable", err)
	}
	if regs := reader.Registrations(); len(regs) != 0 {
		t.Errorf("Registrations after the refused Register = %s, want none", describeRegs(regs))
	}
	if err := reader.Deregister(ctxT(t, 10*time.Second), in2); err != nil {
		t.Errorf("Deregister of the refused registration: %v", err)
	}

	// A client holding the credentials may delete the node; the keeper puts it back.
	owner := srv.Connect(t, 2*time.Second)
	if err := owner.AddAuth("digest", []byte("svc:s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := owner.Delete(p, -1); err != nil {
		t.Fatalf("Delete with the credentials: %v", err)
	}
	d := testutil.WaitFor(t, recoveryTimeout, "node restored", func() string { return nodeState(anon, p, want, nil) })
	t.Logf("guarded node deleted by a credential holder restored in %v", d)
}

// A service this Registry may not read (Kratos with WithDigestACL) does not
// keep a watch-all from delivering the others; the failure is reported.
func TestWatchAllWithUnreadableService(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	anon := newRegistry(t, nil, zk.Config{Namespace: root})
	open := instance("open", "o1", 8200)
	register(t, anon, open)
	kconn := srv.Connect(t, 2*time.Second)
	if err := kconn.AddAuth("digest", []byte("app:pw")); err != nil {
		t.Fatal(err)
	}
	kratosRegisterACL(t, kconn, root, &kratos.ServiceInstance{ID: "k1", Name: "secured", Endpoints: []string{"grpc://10.0.0.1:1"}}, gozk.DigestACL(gozk.PermAll, "app", "pw"))

	w, err := anon.Watch(ctxT(t, time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	sawErr := false
	deadline := time.After(recoveryTimeout)
	for gotOpen := false; !gotOpen || !sawErr; {
		select {
		case res := <-n.ch:
			switch {
			case res.err != nil && errors.Is(res.err, gozk.ErrNoAuth):
				sawErr = true
			case res.err != nil:
				t.Fatalf("Next: %v", res.err)
			case res.u.Service == "secured":
				t.Fatalf("watch-all delivered the unreadable service: %v", res.u)
			case res.u.Service == "open" && registry.EqualInstances(res.u.Instances, []*registry.Instance{open}):
				gotOpen = true
			}
		case <-deadline:
			t.Fatalf("watch-all: open service delivered %v, ErrNoAuth reported %v", false, sawErr)
		}
	}
	// It keeps following the readable services.
	open2 := instance("open", "o2", 8210)
	register(t, anon, open2)
	n.until(recoveryTimeout, "open", open, open2)
}
