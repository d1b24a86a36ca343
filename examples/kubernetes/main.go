// Command kubernetes is a fleet moving into a cluster, with nothing to
// install but the kube-apiserver binary scripts/install-kube-apiserver.sh
// builds (or $REGCHAIN_KUBE_APISERVER): the service "checkout" has two
// instances on VMs, registered in etcd (in-process), and two Pods behind a
// Kubernetes Service, whose EndpointSlice a real kube-apiserver serves (on
// loopback, as the EndpointSlice controller would have written it).
//
// A reader reads through a chain over both (policy Merge: the union of
// every tier) and sees all four. Then the API server is killed: the reader
// keeps all four, the Pods from the Kubernetes tier's last state, marked
// stale (chain rule 4: as far as the chain knows they still exist), until
// that state is older than the chain's max age (3 s here, to keep the run
// short): then the VMs. The API server comes back: four again. Then etcd
// stops: the same the other way round.
//
// It is a module of its own, as adapters/kubernetes is, so that client-go
// reaches only the builds that want it.
//
//	cd examples/kubernetes && go run .
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/kubernetes"
	"github.com/regchain/regchain/adapters/kubernetes/kubetest"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/registry"
)

const service = "checkout"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kubernetes:", err)
		os.Exit(1)
	}
}

// closers runs cleanups in reverse order.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }
func (c closers) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

func run(ctx context.Context, out io.Writer) (err error) {
	var cl closers
	defer func() { cl.run() }() // cl as it is at return, not as it is here
	dir, err := os.MkdirTemp("", "regchain-kubernetes-example-")
	if err != nil {
		return err
	}
	cl.add(func() { os.RemoveAll(dir) })

	// The VMs' registry.
	vmEtcd, err := embedetcd.Start(dir + "/vm-etcd")
	if err != nil {
		return err
	}
	cl.add(vmEtcd.Stop)
	vms, err := etcd.New(etcd.Config{Endpoints: []string{vmEtcd.Endpoint()}, TTL: 2 * time.Second,
		MaxBackoff: 300 * time.Millisecond, Timeout: time.Second, DialTimeout: time.Second, Logger: quiet})
	if err != nil {
		return err
	}
	cl.add(func() { vms.Close() })
	for i, addr := range []string{"192.0.2.10", "192.0.2.11"} {
		in := &registry.Instance{ID: fmt.Sprintf("vm-%d", i+1), Name: service, Version: "v1",
			Endpoints: []string{"grpc://" + addr + ":9000"}}
		if err := vms.Register(ctx, in); err != nil {
			return fmt.Errorf("register %s in etcd: %w", in.ID, err)
		}
	}

	// The cluster: a real kube-apiserver, the Service and its
	// EndpointSlice.
	api, err := kubetest.New(kubetest.Options{Dir: dir + "/kube"})
	if err != nil {
		return err
	}
	cl.add(api.Close)
	admin, closeIdle, err := kubetest.NewClient(api.Config(kubetest.UserAdmin))
	if err != nil {
		return err
	}
	cl.add(closeIdle)
	if err := createService(ctx, admin.CoreV1().Services("default"), admin.DiscoveryV1().EndpointSlices("default")); err != nil {
		return err
	}
	pods, err := kubernetes.New(kubernetes.Config{REST: api.Config(kubetest.UserAdmin), Namespace: "default",
		Timeout: 5 * time.Second, MaxBackoff: 300 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		return err
	}
	cl.add(func() { pods.Close() })

	// The reader's chain: both sides, merged.
	c, err := chain.New([]chain.Tier{
		{Name: "kubernetes", Registry: pods, ReadOnly: true},
		{Name: "etcd", Registry: vms},
	}, chain.WithReadPolicy(chain.Merge), chain.WithProbeInterval(100*time.Millisecond),
		chain.WithFailureThreshold(1), chain.WithSnapshotMaxAge(maxAge), chain.WithLogger(quiet))
	if err != nil {
		return err
	}
	cl.add(func() { c.Close() })

	show := func(what string, want []string, stale bool) error {
		got, err := waitFor(ctx, c, want, stale)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		mark := ""
		if got.Stale {
			mark = ", stale"
		}
		fmt.Fprintf(out, "%s: %s has %d instances %v (source %s%s)\n", what, service, len(want), want, got.Source, mark)
		return nil
	}
	all := []string{"10.244.1.5:9000", "10.244.2.7:9000", "vm-1", "vm-2"}
	if err := show("both sides up", all, false); err != nil {
		return err
	}
	api.Kill()
	if err := show("the API server killed", all, true); err != nil {
		return err
	}
	if err := show("past the max age", all[2:], false); err != nil {
		return err
	}
	if err := api.Start(); err != nil {
		return err
	}
	if err := show("the API server back", all, false); err != nil {
		return err
	}
	vmEtcd.Stop()
	if err := show("etcd stopped", all, true); err != nil {
		return err
	}
	if err := show("past the max age", all[:2], false); err != nil {
		return err
	}
	return nil
}

// maxAge is how long the chain keeps serving a down tier's last state.
const maxAge = 3 * time.Second

// waitFor reads the chain until it serves the instance IDs want (sorted),
// stale or not as asked, and returns that answer.
func waitFor(ctx context.Context, c *chain.Chain, want []string, stale bool) (chain.Answer, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last []string
	var lastErr error
	for {
		a, err := c.GetServiceWithInfo(ctx, service)
		if err == nil {
			ids := make([]string, len(a.Instances))
			for i, in := range a.Instances {
				ids[i] = in.ID
			}
			slices.Sort(ids)
			if slices.Equal(ids, want) && a.Stale == stale {
				return a, nil
			}
			last = ids
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return chain.Answer{}, fmt.Errorf("still %v (%v) when %w", last, lastErr, ctx.Err())
		case <-tick.C:
		}
	}
}

// createService creates a Service without a selector and its
// EndpointSlice with two ready Pods in two zones, as the EndpointSlice
// controller writes them (there is none here).
func createService(ctx context.Context, svcs interface {
	Create(context.Context, *corev1.Service, metav1.CreateOptions) (*corev1.Service, error)
}, slices interface {
	Create(context.Context, *discoveryv1.EndpointSlice, metav1.CreateOptions) (*discoveryv1.EndpointSlice, error)
}) error {
	_, err := svcs.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: service},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 9000, AppProtocol: ptr("grpc")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Service: %w", err)
	}
	tcp := corev1.ProtocolTCP
	ep := func(addr, zone, node string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
			Zone: ptr(zone), NodeName: ptr(node)}
	}
	_, err = slices.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: service + "-abcde", Labels: map[string]string{
			kubernetes.LabelServiceName: service, kubernetes.LabelManagedBy: "endpointslice-controller.k8s.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{ep("10.244.1.5", "zone-a", "node-1"), ep("10.244.2.7", "zone-b", "node-2")},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("grpc"), Protocol: &tcp, Port: ptr(int32(9000)), AppProtocol: ptr("grpc")}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create EndpointSlice: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
