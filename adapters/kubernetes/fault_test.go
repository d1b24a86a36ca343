package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/regchain/regchain/adapters/kubernetes/kubetest"
	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// The API server killed and started again (a crash and a restart on the
// same port, its etcd kept): reads answer ErrUnavailable at once instead
// of stale data, watchers hear of it, a Register during the outage is
// refused as unavailable and not kept, a Deregister during it is retried
// until done; once the API server is back, watchers resume and deliver
// changes made after it, registrations are checked again.
func TestOutageAndRestart(t *testing.T) {
	srv := kubetest.Start(t, kubetest.Options{})
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	r := newRegistry(t, testConfig(t, srv, ns))
	a1, a2, a3 := instance("svc", "a1", 9001), instance("svc", "a2", 9002), instance("svc", "a3", 9003)
	for _, in := range []*registry.Instance{a1, a2} {
		if err := r.Register(ctxT(t, 30*time.Second), in); err != nil {
			t.Fatal(err)
		}
	}
	waitIDs(t, r, "svc", "a1", "a2")
	w, err := r.Watch(ctxT(t, 5*time.Minute), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	watchUntil(t, w, "svc", "a1", "a2")

	srv.Kill()
	if err := r.Ping(ctxT(t, 10*time.Second)); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Ping with the API server down = %v, want ErrUnavailable", err)
	}
	// The informers find out on their own (their watch breaks).
	testutil.WaitFor(t, 60*time.Second, "GetService answers ErrUnavailable", func() string {
		_, err := r.GetService(ctxT(t, 10*time.Second), "svc")
		if errors.Is(err, registry.ErrUnavailable) {
			return ""
		}
		return fmt.Sprintf("GetService = %v", err)
	})
	start := time.Now()
	if _, err := r.GetService(ctxT(t, 10*time.Second), "svc"); time.Since(start) > time.Second {
		t.Errorf("GetService during the outage took %v (%v); it must not wait", time.Since(start), err)
	}
	if err := r.Register(ctxT(t, 30*time.Second), a3); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Register during the outage = %v, want ErrUnavailable", err)
	}
	for _, st := range r.Registrations() {
		if st.Instance.ID == "a3" {
			t.Errorf("the refused registration is kept: %+v", st)
		}
	}
	if err := r.Deregister(ctxT(t, 30*time.Second), a2); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Deregister during the outage = %v, want ErrUnavailable", err)
	}
	// The watcher hears of the outage as a transient error.
	u, err := w.Next()
	if err == nil || !errors.Is(err, registry.ErrUnavailable) || errors.Is(err, registry.ErrStopped) {
		t.Errorf("Next during the outage = %v, %v; want a transient ErrUnavailable", u, err)
	}
	// A watcher started during the outage hears of it too, after the
	// caches' state its first Next would give (which alone looks current).
	w2, err := r.Watch(ctxT(t, 5*time.Minute), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	testutil.WaitFor(t, 30*time.Second, "the new watcher joined the hub with its first state", func() string {
		if n := r.hub.Len(); n != 2 {
			return fmt.Sprintf("%d feeds in the hub", n)
		}
		return ""
	})
	var seen []string
	testutil.WaitFor(t, 30*time.Second, "the new watcher hears of the outage", func() string {
		for {
			u, ok, err := w2.(*registry.Feed).TryNext()
			if !ok {
				return fmt.Sprintf("saw %v", seen)
			}
			if errors.Is(err, registry.ErrUnavailable) && !errors.Is(err, registry.ErrStopped) {
				return ""
			}
			seen = append(seen, fmt.Sprintf("%v/%v", u, err))
		}
	})

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The delete that failed is retried; a change made after the restart
	// reaches the watcher.
	watchUntil(t, w, "svc", "a1")
	if err := r.Register(ctxT(t, 30*time.Second), a3); err != nil {
		t.Fatalf("Register after the restart: %v", err)
	}
	watchUntil(t, w, "svc", "a1", "a3")
	t.Logf("after the restart: the failed delete done and a new registration watched in %v", time.Since(back).Round(time.Millisecond))
	testutil.WaitFor(t, 30*time.Second, "Ping", func() string {
		if err := r.Ping(ctxT(t, 10*time.Second)); err != nil {
			return err.Error()
		}
		return ""
	})
	if st := r.Registrations(); len(st) != 2 || !st[0].Live || !st[1].Live {
		t.Errorf("Registrations = %+v, want a1 and a3 live", st)
	}

	// A graceful restart (SIGTERM) and a slice deleted meanwhile by someone
	// else: the informers relist, the upkeep puts it back.
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := admin.DiscoveryV1().EndpointSlices(ns).Delete(ctxT(t, 30*time.Second), sliceName("svc", "a1"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d := testutil.WaitFor(t, 60*time.Second, "a1's slice back", func() string {
		_, err := admin.DiscoveryV1().EndpointSlices(ns).Get(ctxT(t, 10*time.Second), sliceName("svc", "a1"), metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		return ""
	})
	t.Logf("a slice deleted by another client after a restart back in %v", d.Round(time.Millisecond))
	// Deleted and put back within one dispatch, the state may not have
	// changed for the watcher at all: read it.
	waitIDs(t, r, "svc", "a1", "a3")
}

// Upkeep: a registration's slice deleted or changed by someone else comes
// back; labels and annotations others add to it are left alone.
func TestUpkeep(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	r := newRegistry(t, testConfig(t, srv, ns))
	in := &registry.Instance{ID: "u1", Name: "svc", Version: "v1", Metadata: map[string]string{"zone": "z1"},
		Endpoints: []string{"grpc://10.0.0.7:9000", "http://10.0.0.7:8000"}}
	if err := r.Register(ctxT(t, 30*time.Second), in); err != nil {
		t.Fatal(err)
	}
	api := admin.DiscoveryV1().EndpointSlices(ns)
	name := sliceName("svc", "u1")
	es, err := api.Get(ctxT(t, 10*time.Second), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What Kubernetes' own consumers see: the endpoint and its ports.
	if es.AddressType != discoveryv1.AddressTypeIPv4 || len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != "10.0.0.7" || len(es.Ports) != 2 {
		t.Errorf("slice = %s %+v %+v", es.AddressType, es.Endpoints, es.Ports)
	}

	holds := func() string {
		cur, err := api.Get(ctxT(t, 10*time.Second), name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		got, err := decodeSlice(cur)
		if err != nil || len(got) != 1 || !got[0].Equal(in) {
			return fmt.Sprintf("slice holds %v, %v", got, err)
		}
		return ""
	}
	if err := api.Delete(ctxT(t, 10*time.Second), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted slice back in %v", testutil.WaitFor(t, 30*time.Second, "deleted slice back", holds).Round(time.Millisecond))

	es, err = api.Get(ctxT(t, 10*time.Second), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es.Annotations[AnnotationInstance] = `{"id":"u1","name":"svc","endpoints":["grpc://10.6.6.6:1"]}`
	es.Labels["team"] = "payments"
	if _, err := api.Update(ctxT(t, 10*time.Second), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("changed slice restored in %v", testutil.WaitFor(t, 30*time.Second, "changed slice restored", holds).Round(time.Millisecond))
	cur, err := api.Get(ctxT(t, 10*time.Second), name, metav1.GetOptions{})
	if err != nil || cur.Labels["team"] != "payments" {
		t.Errorf("a label added by someone else was dropped: %v, %v", cur.Labels, err)
	}
	if st := r.Registrations(); len(st) != 1 || !st[0].Live {
		t.Errorf("Registrations = %+v", st)
	}

	// Deregister removes it; the upkeep does not bring it back.
	if err := r.Deregister(ctxT(t, 30*time.Second), in); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Get(ctxT(t, 10*time.Second), name, metav1.GetOptions{}); err == nil {
		t.Error("slice still there after Deregister")
	}
	if st := r.Registrations(); len(st) != 0 {
		t.Errorf("Registrations after Deregister = %+v", st)
	}
}

// A slice whose owner is this process's Pod: the garbage collector deletes
// it with the Pod.
func TestOwnerReference(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	pod := createPod(t, admin, ns, "app-1", nil, nil)
	cfg := testConfig(t, srv, ns)
	cfg.Pod = "app-1"
	r := newRegistry(t, cfg)
	if err := r.Register(ctxT(t, 30*time.Second), instance("svc", "o1", 9000)); err != nil {
		t.Fatal(err)
	}
	es, err := admin.DiscoveryV1().EndpointSlices(ns).Get(ctxT(t, 10*time.Second), sliceName("svc", "o1"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es.OwnerReferences) != 1 || es.OwnerReferences[0].UID != pod.UID || es.OwnerReferences[0].Kind != "Pod" {
		t.Errorf("owner references = %+v, want the Pod %s", es.OwnerReferences, pod.UID)
	}

	// A Pod that does not exist: no owner, a warning, the registration
	// all the same.
	cfg = testConfig(t, srv, ns)
	cfg.Pod = "gone"
	log, rec := recordingLogger(t)
	cfg.Logger = log
	r2 := newRegistry(t, cfg)
	if err := r2.Register(ctxT(t, 30*time.Second), instance("svc", "o2", 9000)); err != nil {
		t.Fatal(err)
	}
	es, err = admin.DiscoveryV1().EndpointSlices(ns).Get(ctxT(t, 10*time.Second), sliceName("svc", "o2"), metav1.GetOptions{})
	if err != nil || len(es.OwnerReferences) != 0 {
		t.Errorf("slice of a registry whose Pod is absent: %v, owners %+v", err, es.OwnerReferences)
	}
	if rec.count("WARN cannot read this process's Pod") != 1 {
		t.Error("no warning about the missing Pod")
	}
}

// RBAC: a user that may not read EndpointSlices gets ErrInvalid and
// ErrPermissionDenied from reads (no failover: it is a configuration
// problem), transient errors from watchers, and Ping still works.
func TestRBACDenied(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	cfg := testConfig(t, srv, ns)
	cfg.REST = srv.Config(kubetest.UserWriter) // granted nothing
	r := newRegistry(t, cfg)
	_, err := r.GetService(ctxT(t, 30*time.Second), "svc")
	if !errors.Is(err, registry.ErrInvalid) || !errors.Is(err, ErrPermissionDenied) || errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("GetService without list permission = %v, want ErrInvalid and ErrPermissionDenied", err)
	}
	w, err := r.Watch(ctxT(t, time.Minute), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := w.Next(); !errors.Is(err, ErrPermissionDenied) || errors.Is(err, registry.ErrStopped) {
		t.Errorf("Next without list permission = %v, want a transient ErrPermissionDenied", err)
	}
	if err := r.Ping(ctxT(t, 10*time.Second)); err != nil {
		t.Errorf("Ping = %v; /readyz needs no permission", err)
	}
	err = r.Register(ctxT(t, 30*time.Second), instance("svc", "x1", 9000))
	if !errors.Is(err, ErrPermissionDenied) || !errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Register without create permission = %v", err)
	}
	if len(r.Registrations()) != 0 {
		t.Errorf("refused registration kept: %+v", r.Registrations())
	}

	// Granted later: reads work without a new registry.
	grant(t, admin, ns, kubetest.UserWriter, "discovery.k8s.io", []string{"endpointslices"}, []string{"get", "list", "watch", "create", "update", "delete"})
	testutil.WaitFor(t, 90*time.Second, "reads once granted", func() string {
		_, err := r.GetService(ctxT(t, 10*time.Second), "svc")
		if errors.Is(err, registry.ErrNotFound) {
			return ""
		}
		return fmt.Sprint(err)
	})
	if err := r.Register(ctxT(t, 30*time.Second), instance("svc", "x1", 9000)); err != nil {
		t.Errorf("Register once granted: %v", err)
	}
	waitIDs(t, r, "svc", "x1")
}

// Watch expiry: a watcher whose connection is cut while the Service
// changes and etcd compacts the revisions it would resume from: the
// informer lists again (the watch ended early, so it does not even try
// the old revision) and the watcher delivers the current state. And a
// watch from a compacted revision gets 410 Gone from the API server (here
// without a watch cache, so the answer comes straight from etcd), which
// reaches client-go's reflector as it is: the reflector lists again.
func TestWatchExpiry(t *testing.T) {
	srv := kubetest.Start(t, kubetest.Options{NoWatchCache: true})
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	proxy, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg := testConfig(t, srv, ns)
	cfg.REST = srv.ConfigAt(proxy.Addr(), kubetest.UserAdmin)
	r := newRegistry(t, cfg)
	first, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctxT(t, 30*time.Second),
		controllerSlice(ns, "exp-1", "exp", nil, endpoint("10.0.0.1", "", "", true)), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldRV := first.ResourceVersion
	w, err := r.Watch(ctxT(t, 5*time.Minute), "exp")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	watchUntil(t, w, "exp", "10.0.0.1:9000", "10.0.0.1:8000")
	lists := r.lists.Load()

	proxy.Refuse(true)
	proxy.Sever()
	// Changes the watcher cannot see, then a compaction of everything up
	// to now.
	createSlice(t, admin, controllerSlice(ns, "exp-2", "exp", nil, endpoint("10.0.0.2", "", "", true)))
	if err := admin.DiscoveryV1().EndpointSlices(ns).Delete(ctxT(t, 30*time.Second), "exp-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Etcd().Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctxT(t, 10*time.Second), "/registry/health-probe-none")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctxT(t, 30*time.Second), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	proxy.Refuse(false)
	watchUntil(t, w, "exp", "10.0.0.2:9000", "10.0.0.2:8000")
	if got := r.lists.Load(); got <= lists {
		t.Errorf("the informer did not list again (%d lists before, %d after): the state came without a relist", lists, got)
	}

	// The API server's own 410 for a watch from a compacted revision
	// reaches the reflector as such (which lists again): it is neither
	// retried as an outage nor turned into anything else.
	api := admin.DiscoveryV1().EndpointSlices(ns)
	lw := &listWatch{r: r, what: "test", outages: r.reach.outageCount(),
		watch: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return api.Watch(ctx, o) }}
	ew, err := lw.WatchWithContext(ctxT(t, 30*time.Second), metav1.ListOptions{ResourceVersion: oldRV})
	switch {
	case err != nil:
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Errorf("watch from a compacted revision: %v, want 410", err)
		}
	default:
		ev, ok := <-ew.ResultChan()
		ew.Stop()
		if st, isStatus := ev.Object.(*metav1.Status); !ok || ev.Type != watch.Error || !isStatus || st.Code != http.StatusGone {
			t.Errorf("watch from a compacted revision: first event %v %+v, want an Error event with 410", ev.Type, ev.Object)
		}
	}
}

// An API server cut off behind a partition that holds the packets (no
// reset): the watch notices through HTTP/2's health check, reads then
// answer ErrUnavailable, and everything resumes when the link heals.
//
// It waits out that health check (a ping after 30 s without a frame,
// dropped 15 s later): about 45 s, on a condition, not a sleep.
func TestPartition(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	proxy, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg := testConfig(t, srv, ns)
	cfg.REST = srv.ConfigAt(proxy.Addr(), kubetest.UserAdmin)
	cfg.Timeout = 3 * time.Second
	r := newRegistry(t, cfg)
	createSlice(t, admin, controllerSlice(ns, "p-1", "part", nil, endpoint("10.0.0.1", "", "", true)))
	waitIDs(t, r, "part", "10.0.0.1:9000", "10.0.0.1:8000")
	proxy.Partition()
	d := testutil.WaitFor(t, 2*time.Minute, "GetService answers ErrUnavailable behind the partition", func() string {
		_, err := r.GetService(ctxT(t, 10*time.Second), "part")
		if errors.Is(err, registry.ErrUnavailable) {
			return ""
		}
		return fmt.Sprint(err)
	})
	t.Logf("partition noticed by the informers after %v", d.Round(time.Millisecond))
	if err := r.Ping(ctxT(t, 10*time.Second)); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Ping behind a partition = %v, want ErrUnavailable", err)
	}
	createSlice(t, admin, controllerSlice(ns, "p-2", "part", nil, endpoint("10.0.0.2", "", "", true)))
	proxy.Heal()
	waitIDs(t, r, "part", "10.0.0.1:9000", "10.0.0.1:8000", "10.0.0.2:9000", "10.0.0.2:8000")
	if got := ids(mustGet(t, r, "part")); !slices.Contains(got, "10.0.0.2:9000") {
		t.Errorf("after healing: %v", got)
	}
}

func mustGet(tb testing.TB, r registry.Registry, svc string) []*registry.Instance {
	tb.Helper()
	ins, err := r.GetService(ctxT(tb, 10*time.Second), svc)
	if err != nil {
		tb.Fatal(err)
	}
	return ins
}
