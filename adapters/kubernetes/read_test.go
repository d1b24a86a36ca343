package kubernetes

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/regchain/regchain/adapters/kubernetes/kubetest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
)

// controllerSlice is an EndpointSlice as Kubernetes' EndpointSlice
// controller writes it for a Service with a selector.
func controllerSlice(ns, name, svc string, labels map[string]string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	tcp := corev1.ProtocolTCP
	l := map[string]string{LabelServiceName: svc, LabelManagedBy: "endpointslice-controller.k8s.io"}
	for k, v := range labels {
		l[k] = v
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr("grpc"), Protocol: &tcp, Port: ptr(int32(9000)), AppProtocol: ptr("grpc")},
			{Name: ptr("http-api"), Protocol: &tcp, Port: ptr(int32(8000))},
		},
	}
}

func endpoint(addr, zone, node string, ready bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready)}}
	if zone != "" {
		e.Zone = ptr(zone)
	}
	if node != "" {
		e.NodeName = ptr(node)
	}
	return e
}

func createSlice(tb testing.TB, c k8s.Interface, es *discoveryv1.EndpointSlice) {
	tb.Helper()
	if _, err := c.DiscoveryV1().EndpointSlices(es.Namespace).Create(ctxT(tb, 30*time.Second), es, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("create slice %s: %v", es.Name, err)
	}
}

func updateSlice(tb testing.TB, c k8s.Interface, es *discoveryv1.EndpointSlice) {
	tb.Helper()
	cur, err := c.DiscoveryV1().EndpointSlices(es.Namespace).Get(ctxT(tb, 30*time.Second), es.Name, metav1.GetOptions{})
	if err != nil {
		tb.Fatalf("get slice %s: %v", es.Name, err)
	}
	es = es.DeepCopy()
	es.ResourceVersion = cur.ResourceVersion
	if _, err := c.DiscoveryV1().EndpointSlices(es.Namespace).Update(ctxT(tb, 30*time.Second), es, metav1.UpdateOptions{}); err != nil {
		tb.Fatalf("update slice %s: %v", es.Name, err)
	}
}

// ids returns the instance IDs, sorted.
func ids(ins []*registry.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	slices.Sort(out)
	return out
}

// waitIDs waits until GetService(svc) returns exactly want (none:
// ErrNotFound).
func waitIDs(tb testing.TB, r registry.Registry, svc string, want ...string) {
	tb.Helper()
	slices.Sort(want)
	testutil.WaitFor(tb, 60*time.Second, "GetService("+svc+")", func() string {
		got, err := r.GetService(ctxT(tb, 10*time.Second), svc)
		if len(want) == 0 && errors.Is(err, registry.ErrNotFound) {
			return ""
		}
		if err != nil {
			return err.Error()
		}
		if g := ids(got); !slices.Equal(g, want) {
			return fmt.Sprintf("got %v, want %v", g, want)
		}
		return ""
	})
}

// watchUntil reads w until an update of svc has exactly the IDs want.
func watchUntil(tb testing.TB, w registry.Watcher, svc string, want ...string) *registry.Update {
	tb.Helper()
	slices.Sort(want)
	type res struct {
		u   *registry.Update
		err error
	}
	deadline := time.After(60 * time.Second)
	var last []string
	for {
		ch := make(chan res, 1)
		go func() {
			u, err := w.Next()
			ch <- res{u, err}
		}()
		select {
		case r := <-ch:
			if errors.Is(r.err, registry.ErrStopped) {
				tb.Fatalf("watch %s ended: %v", svc, r.err)
			}
			if r.err != nil {
				tb.Logf("transient watch error: %v", r.err)
				continue
			}
			if r.u.Service != svc {
				continue
			}
			last = ids(r.u.Instances)
			if slices.Equal(last, want) {
				return r.u
			}
		case <-deadline:
			w.Stop()
			tb.Fatalf("watch %s: want %v, last got %v", svc, want, last)
		}
	}
}

// Every ready endpoint address x port of a Service's EndpointSlices is an
// instance; its zone and node are the locality metadata; readiness,
// updates and deletes reach GetService and watchers.
func TestReadEndpointSlices(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	createSlice(t, admin, controllerSlice(ns, "web-1", "web", nil,
		endpoint("10.0.0.1", "eu-1a", "node-a", true),
		endpoint("10.0.0.2", "eu-1b", "node-b", true),
		endpoint("10.0.0.3", "eu-1a", "node-a", false)))
	r := newRegistry(t, testConfig(t, srv, ns))
	waitIDs(t, r, "web", "10.0.0.1:9000", "10.0.0.1:8000", "10.0.0.2:9000", "10.0.0.2:8000")

	ins, err := r.GetService(ctxT(t, 10*time.Second), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		want := map[string]string{"10.0.0.1": "eu-1a/node-a", "10.0.0.2": "eu-1b/node-b"}[strings.Split(in.ID, ":")[0]]
		if got := in.Metadata[locality.KeyZone] + "/" + in.Metadata[MetaNode]; got != want {
			t.Errorf("%s: zone/node = %s, want %s", in.ID, got, want)
		}
		if in.Metadata[MetaNamespace] != ns {
			t.Errorf("%s: namespace metadata %q", in.ID, in.Metadata[MetaNamespace])
		}
		scheme := strings.SplitN(in.Endpoints[0], ":", 2)[0]
		if want := map[string]string{"9000": "grpc", "8000": "http"}[strings.Split(in.ID, ":")[1]]; scheme != want {
			t.Errorf("%s: endpoint %s, want scheme %s", in.ID, in.Endpoints[0], want)
		}
	}
	names, err := r.ListServices(ctxT(t, 10*time.Second))
	if err != nil || !slices.Equal(names, []string{"web"}) {
		t.Errorf("ListServices = %v, %v; want [web]", names, err)
	}

	// The locality wrapper reads the zone with no configuration.
	lr := locality.Wrap(r, locality.Config{Self: locality.Locality{Zone: "eu-1b"}})
	t.Cleanup(func() { lr.Close() })
	near, err := lr.GetService(ctxT(t, 10*time.Second), "web")
	if err != nil || !slices.Equal(ids(near), []string{"10.0.0.2:8000", "10.0.0.2:9000"}) {
		t.Errorf("zone eu-1b reads %v, %v; want 10.0.0.2's instances", ids(near), err)
	}

	w, err := r.Watch(ctxT(t, 2*time.Minute), "web")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	first := watchUntil(t, w, "web", "10.0.0.1:9000", "10.0.0.1:8000", "10.0.0.2:9000", "10.0.0.2:8000")
	if first.Source != Source || first.Revision == 0 || first.Time.IsZero() {
		t.Errorf("update source %q revision %d time %v", first.Source, first.Revision, first.Time)
	}
	// 10.0.0.3 becomes ready, 10.0.0.1 not.
	updateSlice(t, admin, controllerSlice(ns, "web-1", "web", nil,
		endpoint("10.0.0.1", "eu-1a", "node-a", false),
		endpoint("10.0.0.2", "eu-1b", "node-b", true),
		endpoint("10.0.0.3", "eu-1a", "node-a", true)))
	watchUntil(t, w, "web", "10.0.0.2:9000", "10.0.0.2:8000", "10.0.0.3:9000", "10.0.0.3:8000")
	// A second slice of the same Service adds to it.
	createSlice(t, admin, controllerSlice(ns, "web-2", "web", nil, endpoint("10.0.1.1", "", "", true)))
	watchUntil(t, w, "web", "10.0.0.2:9000", "10.0.0.2:8000", "10.0.0.3:9000", "10.0.0.3:8000", "10.0.1.1:9000", "10.0.1.1:8000")
	for _, name := range []string{"web-1", "web-2"} {
		if err := admin.DiscoveryV1().EndpointSlices(ns).Delete(ctxT(t, 30*time.Second), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	watchUntil(t, w, "web") // the last endpoint gone: an empty state
	waitIDs(t, r, "web")
}

// Namespaces and LabelSelector choose what is read; one service's slices
// in two namespaces make one instance set.
func TestNamespacesAndSelector(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns1, ns2, ns3 := newNamespace(t, admin), newNamespace(t, admin), newNamespace(t, admin)
	createSlice(t, admin, controllerSlice(ns1, "api-1", "api", map[string]string{"tier": "a"}, endpoint("10.1.0.1", "", "", true)))
	createSlice(t, admin, controllerSlice(ns2, "api-1", "api", map[string]string{"tier": "a"}, endpoint("10.2.0.1", "", "", true)))
	createSlice(t, admin, controllerSlice(ns2, "api-2", "api", map[string]string{"tier": "b"}, endpoint("10.2.0.2", "", "", true)))
	createSlice(t, admin, controllerSlice(ns3, "api-1", "api", map[string]string{"tier": "a"}, endpoint("10.3.0.1", "", "", true)))

	cfg := testConfig(t, srv, ns1)
	cfg.Namespaces = []string{ns1, ns2}
	cfg.LabelSelector = "tier=a"
	r := newRegistry(t, cfg)
	waitIDs(t, r, "api", "10.1.0.1:9000", "10.1.0.1:8000", "10.2.0.1:9000", "10.2.0.1:8000")

	cfg = testConfig(t, srv, ns1)
	cfg.Namespaces = []string{metav1.NamespaceAll}
	cfg.LabelSelector = "tier=b"
	all := newRegistry(t, cfg)
	waitIDs(t, all, "api", "10.2.0.2:9000", "10.2.0.2:8000")

	cfg = testConfig(t, srv, ns3) // Namespaces empty: Namespace alone
	waitIDs(t, newRegistry(t, cfg), "api", "10.3.0.1:9000", "10.3.0.1:8000")
}

// A slice that does not decode (an annotation written by hand) is skipped
// and logged once; the rest of the service is read.
func TestBadRecordSkipped(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	good, _ := encodeSlice(&registry.Instance{ID: "g1", Name: "svc", Endpoints: []string{"grpc://10.0.0.1:1"}}, ns, nil)
	bad, _ := encodeSlice(&registry.Instance{ID: "b1", Name: "svc", Endpoints: []string{"grpc://10.0.0.2:1"}}, ns, nil)
	bad.Annotations[AnnotationInstance] = `{"id":"b1","name":"svc","endpoints":["not a url"]}`
	createSlice(t, admin, good)
	createSlice(t, admin, bad)
	cfg := testConfig(t, srv, ns)
	log, rec := recordingLogger(t)
	cfg.Logger = log
	r := newRegistry(t, cfg)
	waitIDs(t, r, "svc", "g1")
	for range 3 {
		if _, err := r.GetService(ctxT(t, 10*time.Second), "svc"); err != nil {
			t.Fatal(err)
		}
	}
	if n := rec.count("WARN skipping an object"); n != 1 {
		t.Errorf("%d warnings about the bad slice, want 1 (then DEBUG)", n)
	}
	if n := rec.count("DEBUG skipping an object"); n < 3 {
		t.Errorf("%d debug lines about the bad slice, want one per later read (>= 3)", n)
	}
}
