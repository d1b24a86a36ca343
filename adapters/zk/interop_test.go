package zk_test

import (
	"encoding/json"
	"errors"
	"path"
	"slices"
	"testing"
	"time"

	kratos "github.com/go-kratos/kratos/v2/registry"
	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/registry"
)

// kratosRegister writes si exactly as Kratos' contrib ZooKeeper registry
// (contrib/registry/zookeeper/register.go) does without credentials:
// ensureName(namespace, "", 0), ensureName(namespace/name, "", 0), then the
// ephemeral node namespace/name/id holding json.Marshal(si), all with
// WorldACL(PermAll).
func kratosRegister(t *testing.T, conn *gozk.Conn, namespace string, si *kratos.ServiceInstance) {
	t.Helper()
	kratosRegisterACL(t, conn, namespace, si, gozk.WorldACL(gozk.PermAll))
}

// kratosRegisterACL is kratosRegister with contrib's WithDigestACL, which
// gives every node it creates DigestACL(PermAll, user, password) only.
func kratosRegisterACL(t *testing.T, conn *gozk.Conn, namespace string, si *kratos.ServiceInstance, acl []gozk.ACL) {
	t.Helper()
	ensureName := func(p string, data []byte, flags int32) {
		exists, _, err := conn.Exists(p)
		if err != nil {
			t.Fatal(err)
		}
		if !exists {
			if _, err := conn.Create(p, data, flags, acl); err != nil {
				t.Fatalf("create %s: %v", p, err)
			}
		}
	}
	if _, err := conn.Create("/regchain-test", nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil && !errors.Is(err, gozk.ErrNodeExists) {
		t.Fatal(err) // our test roots are nested; contrib's namespace is one level
	}
	ensureName(namespace, []byte(""), 0)
	serviceNamePath := path.Join(namespace, si.Name)
	ensureName(serviceNamePath, []byte(""), 0)
	data, err := json.Marshal(si)
	if err != nil {
		t.Fatal(err)
	}
	ensureName(path.Join(serviceNamePath, si.ID), data, gozk.FlagEphemeral)
}

// kratosGetService reads a service as contrib's GetService does.
func kratosGetService(t *testing.T, conn *gozk.Conn, namespace, name string) []*kratos.ServiceInstance {
	t.Helper()
	serviceNamePath := path.Join(namespace, name)
	ids, _, err := conn.Children(serviceNamePath)
	if err != nil {
		t.Fatal(err)
	}
	var items []*kratos.ServiceInstance
	for _, id := range ids {
		data, _, err := conn.Get(path.Join(serviceNamePath, id))
		if err != nil {
			t.Fatal(err)
		}
		var si *kratos.ServiceInstance
		if err := json.Unmarshal(data, &si); err != nil {
			t.Fatalf("contrib would fail to decode %s: %v", id, err)
		}
		items = append(items, si)
	}
	return items
}

func fromKratos(si *kratos.ServiceInstance) *registry.Instance {
	return &registry.Instance{ID: si.ID, Name: si.Name, Version: si.Version, Metadata: si.Metadata, Endpoints: si.Endpoints}
}

// Nodes written the way Kratos' contrib registry writes them are discovered.
func TestInteropKratosWritesRegchainReads(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	kconn := srv.Connect(t, 2*time.Second)
	k1 := &kratos.ServiceInstance{ID: "k1", Name: "helloworld", Version: "v1", Metadata: map[string]string{"weight": "10"}, Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000"}}
	k2 := &kratos.ServiceInstance{ID: "k2", Name: "helloworld", Version: "v2", Endpoints: []string{"grpc://10.0.0.2:9000"}}
	kratosRegister(t, kconn, root, k1)

	r := newRegistry(t, nil, zk.Config{Namespace: root})
	got, err := r.GetService(ctxT(t, 10*time.Second), "helloworld")
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{fromKratos(k1)}) {
		t.Fatalf("GetService = %v, %v; want [%v]", got, err, fromKratos(k1))
	}
	names, err := r.ListServices(ctxT(t, 10*time.Second))
	if err != nil || !slices.Equal(names, []string{"helloworld"}) {
		t.Fatalf("ListServices = %v, %v; want [helloworld]", names, err)
	}
	w, err := r.Watch(ctxT(t, time.Minute), "helloworld")
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	n.until(recoveryTimeout, "helloworld", fromKratos(k1))
	kratosRegister(t, kconn, root, k2)
	n.until(recoveryTimeout, "helloworld", fromKratos(k1), fromKratos(k2))
	// contrib's Deregister: conn.Delete(path, -1).
	if err := kconn.Delete(path.Join(root, "helloworld", "k1"), -1); err != nil {
		t.Fatal(err)
	}
	n.until(recoveryTimeout, "helloworld", fromKratos(k2))
}

// Nodes regchain writes are what contrib reads: same path, ephemeral, JSON
// that decodes into kratos' ServiceInstance byte-for-byte.
func TestInteropRegchainWritesKratosReads(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	r := newRegistry(t, nil, zk.Config{Namespace: root})
	in := &registry.Instance{ID: "r1", Name: "greeter", Version: "v3", Metadata: map[string]string{"zone": "a", "json": `{"x":1}`}, Endpoints: []string{"grpc://10.1.0.1:9000?isSecure=false"}}
	register(t, r, in)
	kconn := srv.Connect(t, 2*time.Second)
	items := kratosGetService(t, kconn, root, "greeter")
	if len(items) != 1 {
		t.Fatalf("contrib GetService found %d instances, want 1", len(items))
	}
	si := items[0]
	if !fromKratos(si).Equal(in) {
		t.Errorf("contrib decoded %+v, want %+v", si, in)
	}
	data, st, err := kconn.Get(path.Join(root, "greeter", "r1"))
	if err != nil {
		t.Fatal(err)
	}
	kratosBytes, _ := json.Marshal(&kratos.ServiceInstance{ID: in.ID, Name: in.Name, Version: in.Version, Metadata: in.Metadata, Endpoints: in.Endpoints})
	if string(data) != string(kratosBytes) {
		t.Errorf("node data\n %s\nwant what contrib writes\n %s", data, kratosBytes)
	}
	if st.EphemeralOwner == 0 {
		t.Errorf("instance node is persistent, want ephemeral")
	}
	for _, parent := range []string{root, path.Join(root, "greeter")} {
		data, st, err := kconn.Get(parent)
		if err != nil || len(data) != 0 || st.EphemeralOwner != 0 {
			t.Errorf("parent %s: data %q, owner %#x, err %v; want persistent and empty", parent, data, st.EphemeralOwner, err)
		}
	}
}

// Kratos with WithDigestACL makes its nodes unreadable without the
// credentials; a Registry holding them reads them and registers beside them.
func TestInteropKratosDigestACL(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	kconn := srv.Connect(t, 2*time.Second)
	if err := kconn.AddAuth("digest", []byte("app:pw")); err != nil {
		t.Fatal(err)
	}
	k1 := &kratos.ServiceInstance{ID: "k1", Name: "secured", Version: "v1", Endpoints: []string{"grpc://10.0.0.1:9000"}}
	kratosRegisterACL(t, kconn, root, k1, gozk.DigestACL(gozk.PermAll, "app", "pw"))

	anon := newRegistry(t, nil, zk.Config{Namespace: root})
	if _, err := anon.GetService(ctxT(t, 10*time.Second), "secured"); !errors.Is(err, gozk.ErrNoAuth) {
		t.Errorf("GetService without credentials = %v, want ErrNoAuth", err)
	}
	r := newRegistry(t, nil, zk.Config{Namespace: root, Username: "app", Password: "pw"})
	got, err := r.GetService(ctxT(t, 10*time.Second), "secured")
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{fromKratos(k1)}) {
		t.Fatalf("GetService with credentials = %v, %v; want [%v]", got, err, fromKratos(k1))
	}
	in := &registry.Instance{ID: "r1", Name: "secured", Version: "v1", Endpoints: []string{"grpc://10.0.0.2:9000"}}
	register(t, r, in)
	items := kratosGetService(t, kconn, root, "secured")
	if len(items) != 2 {
		t.Fatalf("contrib with credentials reads %d instances, want 2", len(items))
	}
}
