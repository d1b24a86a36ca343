package etcdinterop

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	kratosetcd "github.com/go-kratos/kratos/contrib/registry/etcd/v2"
	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

func toKratos(in *registry.Instance) *kratosregistry.ServiceInstance {
	return &kratosregistry.ServiceInstance{ID: in.ID, Name: in.Name, Version: in.Version, Metadata: in.Metadata, Endpoints: in.Endpoints}
}

func fromKratos(in *kratosregistry.ServiceInstance) *registry.Instance {
	return &registry.Instance{ID: in.ID, Name: in.Name, Version: in.Version, Metadata: in.Metadata, Endpoints: in.Endpoints}
}

// kratosNext calls a Kratos watcher's Next with a deadline.
func kratosNext(t *testing.T, w kratosregistry.Watcher) []*kratosregistry.ServiceInstance {
	t.Helper()
	type res struct {
		list []*kratosregistry.ServiceInstance
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		list, err := w.Next()
		ch <- res{list, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("kratos watcher Next: %v", r.err)
		}
		return r.list
	case <-time.After(20 * time.Second):
		w.Stop() // unblocks Next
		t.Fatal("kratos watcher Next: nothing within 20s")
		return nil
	}
}

func kratosHas(list []*kratosregistry.ServiceInstance, want ...*registry.Instance) bool {
	got := make([]*registry.Instance, len(list))
	for i, in := range list {
		got[i] = fromKratos(in)
	}
	return registry.EqualInstances(got, want)
}

// TestKratosInterop runs regchain next to Kratos' contrib etcd registry on
// one namespace: each sees what the other registers, byte for byte.
func TestKratosInterop(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, srv.Endpoint())
	r := newRegistry(t, cfg)
	kctx, kcancel := context.WithCancel(context.Background())
	t.Cleanup(kcancel)
	kr := kratosetcd.New(cli, kratosetcd.Namespace(cfg.Namespace), kratosetcd.RegisterTTL(2*time.Second), kratosetcd.Context(kctx))
	ctx := ctxT(t, time.Minute)
	svc := "interop"

	// Kratos registers; regchain reads and watches it.
	k1 := &registry.Instance{
		ID: "k1", Name: svc, Version: "v1.2.3",
		Metadata:  map[string]string{"weight": "10", "zone": "z1"},
		Endpoints: []string{"grpc://127.0.0.1:9000?isSecure=false", "http://127.0.0.1:8000?isSecure=false"},
	}
	if err := kr.Register(ctx, toKratos(k1)); err != nil {
		t.Fatalf("kratos Register: %v", err)
	}
	t.Cleanup(func() { kr.Deregister(context.Background(), toKratos(k1)) })
	got, err := r.GetService(ctx, svc)
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{k1}) {
		t.Fatalf("regchain GetService of a Kratos registration = %v, %v; want [k1]", got, err)
	}
	rd := watchReader(t, r, svc)
	rd.Until(t, 10*time.Second, svc, k1)

	// regchain registers; the record is byte for byte what Kratos writes.
	r1 := &registry.Instance{
		ID: "r1", Name: svc, Version: "v2",
		Metadata:  map[string]string{"weight": "20"},
		Endpoints: []string{"grpc://127.0.0.2:9000?isSecure=false"},
	}
	kw, err := kr.Watch(ctx, svc)
	if err != nil {
		t.Fatalf("kratos Watch: %v", err)
	}
	t.Cleanup(func() { kw.Stop() })
	if list := kratosNext(t, kw); !kratosHas(list, k1) {
		t.Fatalf("kratos watcher first Next = %v, want [k1]", list)
	}
	if err := r.Register(ctx, r1); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, key(cfg.Namespace, r1.Name, r1.ID))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", resp, err)
	}
	kratosBytes, err := json.Marshal(toKratos(r1))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Kvs[0].Value) != string(kratosBytes) {
		t.Errorf("regchain record\n%s\nKratos would write\n%s", resp.Kvs[0].Value, kratosBytes)
	}
	klist, err := kr.GetService(ctx, svc)
	if err != nil || !kratosHas(klist, k1, r1) {
		t.Errorf("kratos GetService = %v, %v; want [k1 r1]", klist, err)
	}
	testutil.WaitFor(t, 20*time.Second, "kratos watcher sees r1", func() string {
		if list := kratosNext(t, kw); !kratosHas(list, k1, r1) {
			return "got " + kratosString(list)
		}
		return ""
	})
	rd.Until(t, 10*time.Second, svc, k1, r1)

	// Kratos deregisters; regchain's watcher sees it go.
	if err := kr.Deregister(ctx, toKratos(k1)); err != nil {
		t.Fatal(err)
	}
	rd.Until(t, 10*time.Second, svc, r1)
}

func kratosString(list []*kratosregistry.ServiceInstance) string {
	b, _ := json.Marshal(list)
	return string(b)
}
