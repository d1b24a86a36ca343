package kubernetes

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/regchain/regchain/registry"
)

func TestSliceName(t *testing.T) {
	seen := map[string]string{}
	for _, c := range []struct{ name, id string }{
		{"greeter", "g1"}, {"greeter", "g2"}, {"Greeter", "g1"}, {"go.micro.srv.greeter", "x"},
		{strings.Repeat("a", 63), "id"}, {"_x_", "1"}, {"greeter", "g1:9000"},
	} {
		got := sliceName(c.name, c.id)
		if validName("slice", got) != nil || len(got) > 63 {
			t.Errorf("sliceName(%q, %q) = %q: not a valid object name of at most 63 bytes", c.name, c.id, got)
		}
		if got != sliceName(c.name, c.id) {
			t.Errorf("sliceName(%q, %q) is not deterministic", c.name, c.id)
		}
		key := c.name + "/" + c.id
		if prev, dup := seen[got]; dup {
			t.Errorf("sliceName(%s) = sliceName(%s) = %q", key, prev, got)
		}
		seen[got] = key
	}
}

func TestDecodeSlice(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "shop", Labels: map[string]string{
			LabelServiceName: "web", LabelManagedBy: "endpointslice-controller.k8s.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
				Zone: ptr("eu-1a"), NodeName: ptr("node-1"), TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-1"}},
			{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}}, // not ready
			{Addresses: []string{"10.0.0.3"}}, // ready unset: ready
		},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr("grpc-api"), Protocol: &tcp, Port: ptr(int32(9000))},
			{Name: ptr("web"), Protocol: &tcp, Port: ptr(int32(8080)), AppProtocol: ptr("kubernetes.io/h2c")},
			{Name: ptr("dns"), Protocol: &udp, Port: ptr(int32(53))},
			{Name: ptr("any"), Protocol: &tcp}, // no port number: not dialable
		},
	}
	got, err := decodeSlice(es)
	if err != nil {
		t.Fatal(err)
	}
	registry.SortInstances(got)
	want := []string{
		"10.0.0.1:53:udp [dns://10.0.0.1:53] kubernetes.namespace=shop kubernetes.pod=web-1 kubernetes.port=dns node=node-1 zone=eu-1a",
		"10.0.0.1:8080 [h2c://10.0.0.1:8080] kubernetes.namespace=shop kubernetes.pod=web-1 kubernetes.port=web node=node-1 zone=eu-1a",
		"10.0.0.1:9000 [grpc://10.0.0.1:9000] kubernetes.namespace=shop kubernetes.pod=web-1 kubernetes.port=grpc-api node=node-1 zone=eu-1a",
		"10.0.0.3:53:udp [dns://10.0.0.3:53] kubernetes.namespace=shop kubernetes.port=dns",
		"10.0.0.3:8080 [h2c://10.0.0.3:8080] kubernetes.namespace=shop kubernetes.port=web",
		"10.0.0.3:9000 [grpc://10.0.0.3:9000] kubernetes.namespace=shop kubernetes.port=grpc-api",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d instances %v, want %d", len(got), got, len(want))
	}
	for i, in := range got {
		if s := describe(in); s != want[i] {
			t.Errorf("instance %d = %s\n want %s", i, s, want[i])
		}
		if in.Name != "web" {
			t.Errorf("instance %d name %q", i, in.Name)
		}
	}

	// IPv6 addresses are bracketed in URLs.
	es6 := es.DeepCopy()
	es6.AddressType = discoveryv1.AddressTypeIPv6
	es6.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"fd00::1"}}}
	es6.Ports = es6.Ports[:1]
	got, _ = decodeSlice(es6)
	if len(got) != 1 || got[0].ID != "fd00::1:9000" || got[0].Endpoints[0] != "grpc://[fd00::1]:9000" {
		t.Errorf("IPv6 slice = %v", got)
	}
	// A slice without a service label belongs to no service.
	es.Labels = nil
	if got, err := decodeSlice(es); got != nil || err != nil {
		t.Errorf("slice without service label = %v, %v; want nothing", got, err)
	}
}

func describe(in *registry.Instance) string {
	var md []string
	for k, v := range in.Metadata {
		md = append(md, k+"="+v)
	}
	sortStrings(md)
	return fmt.Sprintf("%s %v %s", in.ID, in.Endpoints, strings.Join(md, " "))
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := &registry.Instance{
		ID: "g1", Name: "greeter", Version: "v2",
		Metadata: map[string]string{"zone": "eu-1a", "node": "node-7", "weight": "10", "ünï": "çødé"},
		Endpoints: []string{
			"grpc://10.1.2.3:9000?isSecure=false", "http://10.1.2.3:8000", "http://10.1.2.3:8001/x",
			"grpc://127.0.0.1:9100", "http://[::1]:8080",
		},
	}
	owner := &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: "greeter-1", UID: "u-1"}
	es, err := encodeSlice(in, "shop", owner)
	if err != nil {
		t.Fatal(err)
	}
	if es.Name != sliceName("greeter", "g1") || es.Namespace != "shop" || es.Labels[LabelManagedBy] != ManagedBy || es.Labels[LabelServiceName] != "greeter" {
		t.Errorf("slice meta = %+v", es.ObjectMeta)
	}
	if es.AddressType != discoveryv1.AddressTypeIPv4 || len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != "10.1.2.3" {
		t.Fatalf("projection = %s %+v", es.AddressType, es.Endpoints)
	}
	e := es.Endpoints[0]
	if *e.Zone != "eu-1a" || *e.NodeName != "node-7" || e.TargetRef.Name != "greeter-1" {
		t.Errorf("endpoint = %+v", e)
	}
	var ports []string
	for _, p := range es.Ports {
		ports = append(ports, fmt.Sprintf("%s/%d/%s", *p.Name, *p.Port, *p.AppProtocol))
	}
	if got := strings.Join(ports, " "); got != "grpc/9000/grpc http/8000/http http-2/8001/http" {
		t.Errorf("ports = %s", got)
	}
	got, err := decodeSlice(es)
	if err != nil || len(got) != 1 || !got[0].Equal(in) {
		t.Errorf("decode(encode(in)) = %v, %v; want %v", got, err, in)
	}
	if !sameSlice(es, es.DeepCopy()) {
		t.Error("sameSlice(es, copy) = false")
	}

	// Only loopback addresses: nothing Kubernetes accepts on an endpoint;
	// the annotation still holds everything.
	lo := &registry.Instance{ID: "l1", Name: "greeter", Endpoints: []string{"grpc://127.0.0.1:9000"}}
	es, err = encodeSlice(lo, "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(es.Endpoints) != 0 || len(es.Ports) != 0 || es.OwnerReferences != nil {
		t.Errorf("loopback projection = %+v %+v %+v", es.Endpoints, es.Ports, es.OwnerReferences)
	}
	if got, err := decodeSlice(es); err != nil || len(got) != 1 || !got[0].Equal(lo) {
		t.Errorf("decode(encode(loopback)) = %v, %v", got, err)
	}
}

func TestValidateForSlice(t *testing.T) {
	ok := &registry.Instance{ID: "a", Name: "go.micro.srv.greeter", Endpoints: []string{"grpc://10.0.0.1:1"}}
	if err := validateForSlice(ok); err != nil {
		t.Errorf("validateForSlice(%s) = %v", ok, err)
	}
	for _, name := range []string{"kratos:app", strings.Repeat("n", 64), "x_"} {
		in := &registry.Instance{ID: "a", Name: name, Endpoints: []string{"grpc://10.0.0.1:1"}}
		if err := validateForSlice(in); err == nil {
			t.Errorf("validateForSlice(name %q) = nil, want ErrInvalid", name)
		}
	}
}

func TestDecodeSliceRefusesForeignRecord(t *testing.T) {
	in := &registry.Instance{ID: "g1", Name: "other", Endpoints: []string{"grpc://10.0.0.1:1"}}
	es, _ := encodeSlice(in, "ns", nil)
	es.Labels[LabelServiceName] = "greeter" // the record is of another service
	if _, err := decodeSlice(es); err == nil {
		t.Error("a record of another service under greeter's label decoded")
	}
	es.Annotations[AnnotationInstance] = `{"id":`
	es.Labels[LabelServiceName] = "other"
	if _, err := decodeSlice(es); err == nil {
		t.Error("a truncated record decoded")
	}
}

// kratosPod is a Pod as Kratos' contrib registry's doc example labels it.
func kratosPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx-1", Namespace: "ns", Labels: map[string]string{
			KratosLabelID: "56991810-c77f-4a95-8190-393efa9c1a61", KratosLabelName: "nginx", KratosLabelVersion: "v3.5.0",
		}, Annotations: map[string]string{
			KratosAnnotationProtocols: `{"80": "http"}`,
			KratosAnnotationMetadata:  `{"region": "sh", "zone": "sh001", "cluster": "pd"}`,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Ports: []corev1.ContainerPort{
			{ContainerPort: 80}, {Name: "grpc-x", ContainerPort: 9000}, {ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9"},
	}
}

func TestDecodePod(t *testing.T) {
	in, err := decodePod(kratosPod())
	if err != nil || in == nil {
		t.Fatalf("decodePod = %v, %v", in, err)
	}
	want := "56991810-c77f-4a95-8190-393efa9c1a61 [http://10.0.0.9:80 grpc://10.0.0.9:9000 tcp://10.0.0.9:9090] cluster=pd region=sh zone=sh001"
	if got := describe(in); got != want || in.Name != "nginx" || in.Version != "v3.5.0" {
		t.Errorf("decodePod = %s %s %s\n want %s", in.Name, in.Version, got, want)
	}
	for name, mod := range map[string]func(*corev1.Pod){
		"pending":     func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending },
		"no ip":       func(p *corev1.Pod) { p.Status.PodIP = "" },
		"terminating": func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} },
		"no app":      func(p *corev1.Pod) { delete(p.Labels, KratosLabelName) },
	} {
		p := kratosPod()
		mod(p)
		if in, err := decodePod(p); in != nil || err != nil {
			t.Errorf("%s: decodePod = %v, %v; want nothing", name, in, err)
		}
	}
	p := kratosPod()
	p.Annotations[KratosAnnotationMetadata] = `{"a":`
	if _, err := decodePod(p); err == nil {
		t.Error("bad metadata JSON decoded")
	}
	// No container port: the protocol map says which ports serve.
	p = kratosPod()
	p.Spec.Containers = nil
	p.Annotations[KratosAnnotationProtocols] = `{"9000":"grpc","8000":"http"}`
	delete(p.Labels, KratosLabelID)
	in, err = decodePod(p)
	if err != nil || in.ID != "nginx-1" || strings.Join(in.Endpoints, " ") != "http://10.0.0.9:8000 grpc://10.0.0.9:9000" {
		t.Errorf("decodePod without container ports = %v, %v", in, err)
	}
}

func TestKratosPatchRoundTrip(t *testing.T) {
	in := &registry.Instance{ID: "k1", Name: "helloworld", Version: "v1.0.0",
		Metadata: map[string]string{"zone": "z1"}, Endpoints: []string{"http://10.0.0.9:8000", "grpc://10.0.0.9:9000"}}
	if err := validateForKratos(in); err != nil {
		t.Fatal(err)
	}
	patch, err := kratosPatch(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"labels":{"kratos-service-app":"helloworld","kratos-service-id":"k1","kratos-service-version":"v1.0.0"},"annotations":{"kratos-service-metadata":"{\"zone\":\"z1\"}","kratos-service-protocols":"{\"8000\":\"http\",\"9000\":\"grpc\"}"}}}`
	if string(patch) != want {
		t.Errorf("patch = %s\n want %s", patch, want)
	}
	pod := kratosPod()
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8000}, {ContainerPort: 9000}}
	pod.Labels = map[string]string{KratosLabelID: "k1", KratosLabelName: "helloworld", KratosLabelVersion: "v1.0.0"}
	pod.Annotations = map[string]string{KratosAnnotationMetadata: `{"zone":"z1"}`, KratosAnnotationProtocols: `{"8000":"http","9000":"grpc"}`}
	if !kratosHolds(pod, in) {
		t.Error("kratosHolds = false for the patched Pod")
	}
	got, err := decodePod(pod)
	if err != nil || !got.Equal(in) {
		t.Errorf("decodePod(patched) = %v, %v; want %v", got, err, in)
	}
	rm, _ := kratosPatch(nil)
	if !strings.Contains(string(rm), `"kratos-service-app":null`) {
		t.Errorf("removal patch = %s", rm)
	}
	bad := in.Clone()
	bad.ID = "kratos:1"
	if validateForKratos(bad) == nil {
		t.Error("an ID that is no label value passed validateForKratos")
	}
}

// FuzzDecodeSlice holds the decoder of EndpointSlices (written by anyone
// with access to the namespace) to never panic and to return only valid
// instances of the slice's service.
func FuzzDecodeSlice(f *testing.F) {
	f.Add("greeter", "regchain", `{"id":"g1","name":"greeter","endpoints":["grpc://10.0.0.1:1"]}`, "10.0.0.1", int32(9000), "grpc")
	f.Add("web", "endpointslice-controller.k8s.io", "", "fd00::1", int32(80), "kubernetes.io/h2c")
	f.Add("x", "regchain", `{"id":"../x","name":"x","endpoints":["::"]}`, "", int32(0), "")
	f.Fuzz(func(t *testing.T, svc, managedBy, record, addr string, port int32, appProto string) {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{LabelServiceName: svc, LabelManagedBy: managedBy},
				Annotations: map[string]string{AnnotationInstance: record}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{addr}}},
			Ports:     []discoveryv1.EndpointPort{{Port: &port, AppProtocol: &appProto}},
		}
		ins, err := decodeSlice(es)
		if err != nil {
			return
		}
		for _, in := range ins {
			if err := registry.Validate(in); err != nil {
				t.Errorf("invalid instance %v: %v", in, err)
			}
			if in.Name != svc {
				t.Errorf("instance of %q from a slice of %q", in.Name, svc)
			}
		}
	})
}

// FuzzDecodePod holds the decoder of Kratos' Pod layout to the same.
func FuzzDecodePod(f *testing.F) {
	f.Add("nginx", "id-1", `{"zone":"z"}`, `{"80":"http"}`, "10.0.0.9", int32(80), "http-x")
	f.Add("x", "", `null`, `{"0":""}`, "::1", int32(-1), "")
	f.Fuzz(func(t *testing.T, name, id, md, protos, ip string, port int32, portName string) {
		pod := kratosPod()
		pod.Labels = map[string]string{KratosLabelName: name, KratosLabelID: id}
		pod.Annotations = map[string]string{KratosAnnotationMetadata: md, KratosAnnotationProtocols: protos}
		pod.Status.PodIP = ip
		pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: portName, ContainerPort: port}}
		in, err := decodePod(pod)
		if err != nil || in == nil {
			return
		}
		if err := registry.Validate(in); err != nil {
			t.Errorf("invalid instance %v: %v", in, err)
		}
		if in.Name != name {
			t.Errorf("instance of %q from a Pod of %q", in.Name, name)
		}
	})
}
