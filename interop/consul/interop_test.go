package consulinterop

import (
	"context"
	"fmt"
	"testing"
	"time"

	kconsul "github.com/go-kratos/kratos/contrib/registry/consul/v2"
	kregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

func fromKratos(k *kregistry.ServiceInstance) *registry.Instance {
	return &registry.Instance{ID: k.ID, Name: k.Name, Version: k.Version, Metadata: k.Metadata, Endpoints: k.Endpoints}
}

// newKratos returns Kratos' contrib Consul registry on the agent, with its
// TTL heartbeat (every second, TTL 2s) and without the TCP checks it adds by
// default (nothing listens on the test endpoints).
func newKratos(t *testing.T, a *consultest.Agent) *kconsul.Registry {
	return kconsul.New(a.Client(t), kconsul.WithHealthCheck(false), kconsul.WithHeartbeat(true), kconsul.WithHealthCheckInterval(1))
}

// TestInteropKratosToRegchain: an app registered by Kratos' contrib registry
// is found by GetService and Watch, equal to what it registered.
func TestInteropKratosToRegchain(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	r := newRegistry(t, testConfig(t, a.Addr))
	k := newKratos(t, a)
	svc := "interop-k2r"
	w, err := r.Watch(ctxT(t, time.Minute), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	until(t, w, svc, recoverWithin) // empty at first

	ki := &kregistry.ServiceInstance{
		ID: "kratos-1", Name: svc, Version: "v2.9.2",
		Metadata:  map[string]string{"weight": "10", "zone": "eu-1"},
		Endpoints: []string{"grpc://127.0.0.1:9000?isSecure=false", "http://127.0.0.1:8000"},
	}
	if err := k.Register(ctxT(t, 10*time.Second), ki); err != nil {
		t.Fatalf("kratos Register: %v", err)
	}
	t.Cleanup(func() { k.Deregister(context.Background(), ki) })
	want := fromKratos(ki)
	testutil.WaitFor(t, recoverWithin, "GetService sees the Kratos instance", testutil.Sees(t, r, svc, want))
	until(t, w, svc, recoverWithin, want)

	if err := k.Deregister(ctxT(t, 10*time.Second), ki); err != nil {
		t.Fatalf("kratos Deregister: %v", err)
	}
	until(t, w, svc, recoverWithin)
}

// TestInteropRegchainToKratos: an instance registered by regchain, with two
// endpoints of one scheme, is found equal by Kratos' GetService and Watch.
func TestInteropRegchainToKratos(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	r := newRegistry(t, testConfig(t, a.Addr))
	k := newKratos(t, a)
	svc := "interop-r2k"
	in := &registry.Instance{
		ID: "regchain-1", Name: svc, Version: "v1.0.0",
		Metadata:  map[string]string{"weight": "20", "zone": "eu-2", "empty": ""},
		Endpoints: []string{"grpc://127.0.0.1:9100", "grpc://127.0.0.1:9101", "http://[::1]:8100/path?x=1"},
	}
	if err := r.Register(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, recoverWithin, "Kratos GetService sees the regchain instance", func() string {
		got, err := k.GetService(ctxT(t, 5*time.Second), svc)
		if err != nil {
			return err.Error()
		}
		if len(got) != 1 || !fromKratos(got[0]).Equal(in) {
			return fmt.Sprintf("got %+v, want %+v", got, in)
		}
		return ""
	})

	kw, err := k.Watch(ctxT(t, time.Minute), svc)
	if err != nil {
		t.Fatalf("kratos Watch: %v", err)
	}
	defer kw.Stop()
	type result struct {
		got []*kregistry.ServiceInstance
		err error
	}
	ch := make(chan result, 1)
	go func() {
		got, err := kw.Next()
		ch <- result{got, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil || len(res.got) != 1 || !fromKratos(res.got[0]).Equal(in) {
			t.Errorf("kratos watcher Next = %+v, %v; want %+v", res.got, res.err, in)
		}
	case <-time.After(recoverWithin):
		kw.Stop()
		<-ch
		t.Fatal("kratos watcher did not deliver")
	}

	if err := r.Deregister(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, recoverWithin, "deregistered", testutil.Sees(t, r, svc))
}
