package kubernetes

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/regchain/regchain/adapters/kubernetes/kubetest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// createPod creates a Pod with container ports 8000 and 9000 and, there
// being no kubelet, sets its status to Running with IP 10.0.9.<n>.
func createPod(tb testing.TB, admin k8s.Interface, ns, name string, labels, annotations map[string]string) *corev1.Pod {
	tb.Helper()
	ctx := ctxT(tb, 30*time.Second)
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "example.invalid/app:v1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}, {Name: "grpc", ContainerPort: 9000}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("create pod: %v", err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "10.0.9." + name[len(name)-1:]
	pod.Status.PodIPs = []corev1.PodIP{{IP: pod.Status.PodIP}}
	pod, err = admin.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		tb.Fatalf("pod status: %v", err)
	}
	return pod
}

// A Kratos app registered by Kratos' contrib Kubernetes registry (its Pod
// labelled and annotated as the registry's Register does) is read with
// KratosRead, next to the EndpointSlice instances of the same service.
func TestKratosRead(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	createPod(t, admin, ns, "hello-1", map[string]string{
		KratosLabelID: "hello-1-id", KratosLabelName: "helloworld", KratosLabelVersion: "v1.0.0",
	}, map[string]string{
		KratosAnnotationMetadata:  `{"zone":"eu-1a","weight":"10"}`,
		KratosAnnotationProtocols: `{"8000":"http","9000":"grpc"}`,
	})
	createPod(t, admin, ns, "plain-2", nil, nil) // not a Kratos app
	createSlice(t, admin, controllerSlice(ns, "hw-1", "helloworld", nil, endpoint("10.0.0.1", "", "", true)))

	cfg := testConfig(t, srv, ns)
	cfg.Kratos = KratosRead
	r := newRegistry(t, cfg)
	waitIDs(t, r, "helloworld", "hello-1-id", "10.0.0.1:9000", "10.0.0.1:8000")
	for _, in := range mustGet(t, r, "helloworld") {
		if in.ID != "hello-1-id" {
			continue
		}
		want := &registry.Instance{ID: "hello-1-id", Name: "helloworld", Version: "v1.0.0",
			Metadata:  map[string]string{"zone": "eu-1a", "weight": "10"},
			Endpoints: []string{"http://10.0.9.1:8000", "grpc://10.0.9.1:9000"}}
		if !in.Equal(want) {
			t.Errorf("Kratos instance = %+v, want %+v", in, want)
		}
	}
	// Without KratosRead the Pod is not read.
	waitIDs(t, newRegistry(t, testConfig(t, srv, ns)), "helloworld", "10.0.0.1:9000", "10.0.0.1:8000")

	// The Pod leaving Running removes the instance from watchers.
	w, err := r.Watch(ctxT(t, 2*time.Minute), "helloworld")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	watchUntil(t, w, "helloworld", "hello-1-id", "10.0.0.1:9000", "10.0.0.1:8000")
	pod, err := admin.CoreV1().Pods(ns).Get(ctxT(t, 10*time.Second), "hello-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodFailed
	if _, err := admin.CoreV1().Pods(ns).UpdateStatus(ctxT(t, 10*time.Second), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	watchUntil(t, w, "helloworld", "10.0.0.1:9000", "10.0.0.1:8000")
}

// KratosReadWrite: Register labels this process's Pod as Kratos' Register
// does (one instance per Pod), the upkeep puts the labels back when they
// are removed, Deregister removes them.
func TestKratosWrite(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	ns := newNamespace(t, admin)
	createPod(t, admin, ns, "app-3", nil, nil)
	cfg := testConfig(t, srv, ns)
	cfg.Kratos = KratosReadWrite
	cfg.Pod = "app-3"
	r := newRegistry(t, cfg)
	in := &registry.Instance{ID: "k1", Name: "helloworld", Version: "v2",
		Metadata: map[string]string{"zone": "eu-1b"}, Endpoints: []string{"http://10.0.9.3:8000", "grpc://10.0.9.3:9000"}}
	if err := r.Register(ctxT(t, 30*time.Second), in); err != nil {
		t.Fatal(err)
	}
	pod, err := admin.CoreV1().Pods(ns).Get(ctxT(t, 10*time.Second), "app-3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Labels[KratosLabelName] != "helloworld" || pod.Labels[KratosLabelID] != "k1" || pod.Labels[KratosLabelVersion] != "v2" ||
		pod.Annotations[KratosAnnotationProtocols] != `{"8000":"http","9000":"grpc"}` || pod.Annotations[KratosAnnotationMetadata] != `{"zone":"eu-1b"}` {
		t.Errorf("Pod labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	reader := testConfig(t, srv, ns)
	reader.Kratos = KratosRead
	rr := newRegistry(t, reader)
	waitIDs(t, rr, "helloworld", "k1")
	if got := mustGet(t, rr, "helloworld"); !got[0].Equal(in) {
		t.Errorf("read back %+v, want %+v", got[0], in)
	}

	// One instance per Pod.
	other := in.Clone()
	other.ID = "k2"
	if err := r.Register(ctxT(t, 30*time.Second), other); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("a second instance on the Pod = %v, want ErrInvalid", err)
	}
	// Labels removed by someone else come back.
	patch, _ := kratosPatch(nil)
	if _, err := admin.CoreV1().Pods(ns).Patch(ctxT(t, 10*time.Second), "app-3", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 60*time.Second, "Kratos labels back", func() string {
		p, err := admin.CoreV1().Pods(ns).Get(ctxT(t, 10*time.Second), "app-3", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if !kratosHolds(p, in) {
			return "labels not back yet"
		}
		return ""
	})
	if err := r.Deregister(ctxT(t, 30*time.Second), in); err != nil {
		t.Fatal(err)
	}
	waitIDs(t, rr, "helloworld")
	pod, err = admin.CoreV1().Pods(ns).Get(ctxT(t, 10*time.Second), "app-3", metav1.GetOptions{})
	if err != nil || pod.Labels[KratosLabelName] != "" || pod.Annotations[KratosAnnotationMetadata] != "" {
		t.Errorf("after Deregister: labels %v annotations %v, %v", pod.Labels, pod.Annotations, err)
	}
	// Now another instance may take the Pod.
	if err := r.Register(ctxT(t, 30*time.Second), other); err != nil {
		t.Errorf("Register after Deregister: %v", err)
	}
	waitIDs(t, rr, "helloworld", "k2")
}
