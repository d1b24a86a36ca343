package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
)

// Labels, annotations and metadata keys of the layouts this package reads
// and writes (see the package doc).
const (
	// LabelServiceName is the EndpointSlice label naming the Service (and
	// the regchain service) a slice belongs to.
	LabelServiceName = discoveryv1.LabelServiceName
	// LabelManagedBy is the EndpointSlice label naming what manages a
	// slice; the EndpointSlice controller leaves slices it does not manage
	// alone.
	LabelManagedBy = discoveryv1.LabelManagedBy
	// ManagedBy is the value of LabelManagedBy on the slices Register
	// writes.
	ManagedBy = "regchain"
	// AnnotationInstance holds, on a slice Register wrote, the registered
	// Instance as JSON (registry.Marshal): what regchain reads back.
	AnnotationInstance = "regchain/instance"

	// MetaNode is the metadata key of an instance's node (the
	// EndpointSlice endpoint's nodeName). Its zone goes under
	// locality.KeyZone ("zone").
	MetaNode = "node"
	// MetaNamespace is the metadata key of the namespace an EndpointSlice
	// instance was read from.
	MetaNamespace = "kubernetes.namespace"
	// MetaPod is the metadata key of the Pod behind an EndpointSlice
	// instance (the endpoint's targetRef), when there is one.
	MetaPod = "kubernetes.pod"
	// MetaPort is the metadata key of the name of an EndpointSlice
	// instance's port, when it has one.
	MetaPort = "kubernetes.port"

	// The Pod labels and annotations of Kratos' contrib Kubernetes
	// registry (github.com/go-kratos/kratos/contrib/registry/kubernetes).
	KratosLabelID             = "kratos-service-id"
	KratosLabelName           = "kratos-service-app"
	KratosLabelVersion        = "kratos-service-version"
	KratosAnnotationMetadata  = "kratos-service-metadata"
	KratosAnnotationProtocols = "kratos-service-protocols"

	// MaxAnnotationSize is the largest AnnotationInstance Register writes:
	// the API server refuses more than 256 KiB of annotations per object.
	MaxAnnotationSize = 200 << 10
)

// sliceName is the name of the EndpointSlice holding instance (name, id):
// the service name made a DNS label prefix, and a hash of name and id, so
// that every instance has its own slice, found again by name.
func sliceName(name, id string) string {
	sum := sha256.Sum256([]byte(name + "\x00" + id))
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
		if b.Len() == 40 {
			break
		}
	}
	base := strings.Trim(b.String(), "-")
	if base == "" {
		base = "regchain"
	}
	return base + "-" + hex.EncodeToString(sum[:8])
}

// validLabelValue reports whether s can be a label value: at most 63
// bytes of letters, digits, '-', '_' and '.', starting and ending with a
// letter or digit (or empty).
func validLabelValue(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if alnum {
			continue
		}
		if i == 0 || i == len(s)-1 || c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// validDNSLabel reports whether s is a DNS-1123 label (port names).
func validDNSLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			continue
		}
		if c != '-' || i == 0 || i == len(s)-1 {
			return false
		}
	}
	return true
}

// validateForSlice returns an error wrapping registry.ErrInvalid when in
// (already valid for registry.Validate) cannot be written as an
// EndpointSlice: its name must be a label value, and its record must fit
// in an annotation.
func validateForSlice(in *registry.Instance) error {
	if !validLabelValue(in.Name) {
		return fmt.Errorf("%w: %s: the service name must be a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit) to name an EndpointSlice's service", registry.ErrInvalid, in)
	}
	b, err := registry.Marshal(in)
	if err != nil {
		return err
	}
	if len(b) > MaxAnnotationSize {
		return fmt.Errorf("%w: %s: the record is %d bytes, more than the %d an EndpointSlice annotation holds here", registry.ErrInvalid, in, len(b), MaxAnnotationSize)
	}
	return nil
}

// encodeSlice returns the EndpointSlice that holds in, in namespace ns,
// owned by owner when it is not nil.
func encodeSlice(in *registry.Instance, ns string, owner *metav1.OwnerReference) (*discoveryv1.EndpointSlice, error) {
	b, err := registry.Marshal(in)
	if err != nil {
		return nil, err
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:        sliceName(in.Name, in.ID),
			Namespace:   ns,
			Labels:      map[string]string{LabelServiceName: in.Name, LabelManagedBy: ManagedBy},
			Annotations: map[string]string{AnnotationInstance: string(b)},
		},
	}
	if owner != nil {
		es.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	es.AddressType, es.Endpoints, es.Ports = project(in, owner, ns)
	return es, nil
}

// project returns the EndpointSlice form of in for Kubernetes' own
// consumers (kube-proxy, DNS): one endpoint, the host of in's first
// endpoint URL whose host is an IP address Kubernetes accepts on an
// endpoint (not loopback, link-local or unspecified), with a port for each
// URL on that host. What else in holds lives in the annotation only.
func project(in *registry.Instance, owner *metav1.OwnerReference, ns string) (discoveryv1.AddressType, []discoveryv1.Endpoint, []discoveryv1.EndpointPort) {
	var host netip.Addr
	var ports []discoveryv1.EndpointPort
	names := map[string]bool{}
	for _, ep := range in.Endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			continue
		}
		a, err := netip.ParseAddr(u.Hostname())
		if err != nil || !endpointIP(a) {
			continue
		}
		a = a.Unmap()
		if !host.IsValid() {
			host = a
		}
		if a != host {
			continue
		}
		p, err := strconv.ParseUint(u.Port(), 10, 16)
		if err != nil || p == 0 {
			continue
		}
		scheme := strings.ToLower(u.Scheme)
		name := portName(scheme, names)
		proto := corev1.ProtocolTCP
		port := discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: ptr(int32(p))}
		if validLabelValue(scheme) && scheme != "" {
			port.AppProtocol = ptr(scheme)
		}
		ports = append(ports, port)
	}
	if !host.IsValid() || len(ports) == 0 {
		return discoveryv1.AddressTypeIPv4, nil, nil
	}
	typ := discoveryv1.AddressTypeIPv4
	if host.Is6() {
		typ = discoveryv1.AddressTypeIPv6
	}
	e := discoveryv1.Endpoint{
		Addresses: []string{host.String()},
		Conditions: discoveryv1.EndpointConditions{
			Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false),
		},
	}
	if z := in.Metadata[locality.KeyZone]; z != "" && validLabelValue(z) {
		e.Zone = ptr(z)
	}
	if n := in.Metadata[MetaNode]; n != "" && validName("node", n) == nil {
		e.NodeName = ptr(n)
	}
	if owner != nil && owner.Kind == "Pod" {
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: owner.Name, UID: owner.UID}
	}
	return typ, []discoveryv1.Endpoint{e}, ports
}

// endpointIP reports whether Kubernetes accepts a on an EndpointSlice
// endpoint.
func endpointIP(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsLinkLocalMulticast() && a.Zone() == ""
}

// portName returns a port name unique among used, derived from a URL
// scheme: a DNS label, "-2", "-3"... on repeats.
func portName(scheme string, used map[string]bool) string {
	var b strings.Builder
	for _, c := range scheme {
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	if base == "" || !validDNSLabel(base) {
		base = "port"
	}
	name := base
	for i := 2; used[name]; i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	used[name] = true
	return name
}

func ptr[T any](v T) *T { return &v }

// sameSlice reports whether cur holds what want says: the fields this
// package writes (labels and annotation of its own, address type,
// endpoints, ports, owners). Whatever else others added is left alone.
func sameSlice(cur, want *discoveryv1.EndpointSlice) bool {
	if cur.Labels[LabelServiceName] != want.Labels[LabelServiceName] ||
		cur.Labels[LabelManagedBy] != want.Labels[LabelManagedBy] ||
		cur.Annotations[AnnotationInstance] != want.Annotations[AnnotationInstance] ||
		cur.AddressType != want.AddressType {
		return false
	}
	if len(cur.OwnerReferences) != len(want.OwnerReferences) {
		return false
	}
	for i := range cur.OwnerReferences {
		a, b := cur.OwnerReferences[i], want.OwnerReferences[i]
		if a.APIVersion != b.APIVersion || a.Kind != b.Kind || a.Name != b.Name || a.UID != b.UID {
			return false
		}
	}
	return slices.EqualFunc(cur.Endpoints, want.Endpoints, sameEndpoint) &&
		slices.EqualFunc(cur.Ports, want.Ports, samePort)
}

func sameEndpoint(a, b discoveryv1.Endpoint) bool {
	return slices.Equal(a.Addresses, b.Addresses) &&
		eqPtr(a.Conditions.Ready, b.Conditions.Ready) &&
		eqPtr(a.Conditions.Serving, b.Conditions.Serving) &&
		eqPtr(a.Conditions.Terminating, b.Conditions.Terminating) &&
		eqPtr(a.Zone, b.Zone) && eqPtr(a.NodeName, b.NodeName) &&
		(a.TargetRef == nil) == (b.TargetRef == nil) &&
		(a.TargetRef == nil || a.TargetRef.Name == b.TargetRef.Name && a.TargetRef.UID == b.TargetRef.UID)
}

func samePort(a, b discoveryv1.EndpointPort) bool {
	return eqPtr(a.Name, b.Name) && eqPtr(a.Protocol, b.Protocol) && eqPtr(a.Port, b.Port) && eqPtr(a.AppProtocol, b.AppProtocol)
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// serviceOf returns the regchain service an EndpointSlice belongs to, ""
// when it belongs to none (no service label, or one that is not a valid
// name).
func serviceOf(es *discoveryv1.EndpointSlice) string {
	name := es.Labels[LabelServiceName]
	if name == "" || registry.ValidateName(name) != nil {
		return ""
	}
	return name
}

// ownSlice reports whether es was written by Register (of any process).
func ownSlice(es *discoveryv1.EndpointSlice) bool {
	return es.Labels[LabelManagedBy] == ManagedBy && es.Annotations[AnnotationInstance] != ""
}

// decodeSlice returns the instances an EndpointSlice holds (see the
// package doc, "Reading"). A slice Register wrote holds the instance of its
// annotation; an error says why that cannot be read. Any other slice holds
// one instance per ready endpoint and port.
func decodeSlice(es *discoveryv1.EndpointSlice) ([]*registry.Instance, error) {
	name := serviceOf(es)
	if name == "" {
		return nil, nil
	}
	if ownSlice(es) {
		in, err := registry.Unmarshal([]byte(es.Annotations[AnnotationInstance]))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", AnnotationInstance, err)
		}
		if in.Name != name {
			return nil, fmt.Errorf("%w: annotation %s holds an instance of %q, the slice belongs to %q", registry.ErrInvalid, AnnotationInstance, in.Name, name)
		}
		return []*registry.Instance{in}, nil
	}
	var out []*registry.Instance
	for i := range es.Endpoints {
		e := &es.Endpoints[i]
		if len(e.Addresses) == 0 || e.Conditions.Ready != nil && !*e.Conditions.Ready {
			continue
		}
		addr := e.Addresses[0]
		for j := range es.Ports {
			p := &es.Ports[j]
			if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
				continue // no port number: "every port", nothing to dial
			}
			in := endpointInstance(name, es.Namespace, addr, e, p)
			if registry.Validate(in) != nil {
				continue
			}
			out = append(out, in)
		}
	}
	return out, nil
}

// endpointInstance returns the instance of one endpoint address and port.
func endpointInstance(name, ns, addr string, e *discoveryv1.Endpoint, p *discoveryv1.EndpointPort) *registry.Instance {
	port := strconv.Itoa(int(*p.Port))
	proto := corev1.ProtocolTCP
	if p.Protocol != nil && *p.Protocol != "" {
		proto = *p.Protocol
	}
	id := addr + ":" + port
	if proto != corev1.ProtocolTCP {
		id += ":" + strings.ToLower(string(proto))
	}
	scheme := portScheme(p, proto)
	md := map[string]string{MetaNamespace: ns}
	if e.Zone != nil && *e.Zone != "" {
		md[locality.KeyZone] = *e.Zone
	}
	if e.NodeName != nil && *e.NodeName != "" {
		md[MetaNode] = *e.NodeName
	}
	if e.TargetRef != nil && e.TargetRef.Kind == "Pod" && e.TargetRef.Name != "" {
		md[MetaPod] = e.TargetRef.Name
	}
	if p.Name != nil && *p.Name != "" {
		md[MetaPort] = *p.Name
	}
	return &registry.Instance{
		ID:        id,
		Name:      name,
		Metadata:  md,
		Endpoints: []string{scheme + "://" + net.JoinHostPort(addr, port)},
	}
}

// portScheme picks an endpoint URL scheme for an EndpointSlice port: its
// appProtocol ("grpc", "http"; "kubernetes.io/h2c" gives "h2c"), else the
// part of its name before the first '-' ("grpc-api" gives "grpc", the
// convention Kratos' registry and Istio read), else the protocol in lower
// case ("tcp", "udp", "sctp").
func portScheme(p *discoveryv1.EndpointPort, proto corev1.Protocol) string {
	if p.AppProtocol != nil {
		ap := *p.AppProtocol
		if i := strings.LastIndexByte(ap, '/'); i >= 0 {
			ap = ap[i+1:]
		}
		if s := strings.ToLower(ap); validScheme(s) {
			return s
		}
	}
	if p.Name != nil {
		if s, _, _ := strings.Cut(strings.ToLower(*p.Name), "-"); validScheme(s) {
			return s
		}
	}
	return strings.ToLower(string(proto))
}

// validScheme reports whether s is a URL scheme (RFC 3986).
func validScheme(s string) bool {
	if s == "" || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// kratosName returns the service a Pod carries in Kratos' layout, "" when
// none.
func kratosName(pod *corev1.Pod) string {
	name := pod.Labels[KratosLabelName]
	if name == "" || registry.ValidateName(name) != nil {
		return ""
	}
	return name
}

// emptyKratosValue is what Kratos' registry takes for "no value" in its
// annotations.
func emptyKratosValue(s string) bool {
	switch strings.TrimSpace(s) {
	case "", "{}", "null", "nil", "[]":
		return true
	}
	return false
}

// decodePod returns the instance a Pod holds in Kratos' layout, nil when it
// holds none (no service label, not Running, no IP yet, terminating), or
// an error saying why its labels and annotations do not make an instance.
func decodePod(pod *corev1.Pod) (*registry.Instance, error) {
	name := kratosName(pod)
	if name == "" || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" || pod.DeletionTimestamp != nil {
		return nil, nil
	}
	md := map[string]string{}
	if s := pod.Annotations[KratosAnnotationMetadata]; !emptyKratosValue(s) {
		if len(s) > registry.MaxRecordSize {
			return nil, fmt.Errorf("%w: annotation %s is %d bytes", registry.ErrInvalid, KratosAnnotationMetadata, len(s))
		}
		if err := json.Unmarshal([]byte(s), &md); err != nil {
			return nil, fmt.Errorf("%w: annotation %s: %w", registry.ErrInvalid, KratosAnnotationMetadata, err)
		}
	}
	protos := map[string]string{}
	if s := pod.Annotations[KratosAnnotationProtocols]; !emptyKratosValue(s) {
		if len(s) > registry.MaxRecordSize {
			return nil, fmt.Errorf("%w: annotation %s is %d bytes", registry.ErrInvalid, KratosAnnotationProtocols, len(s))
		}
		if err := json.Unmarshal([]byte(s), &protos); err != nil {
			return nil, fmt.Errorf("%w: annotation %s: %w", registry.ErrInvalid, KratosAnnotationProtocols, err)
		}
	}
	ip := pod.Status.PodIP
	var eps []string
	seen := map[int32]bool{}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			scheme := strings.ToLower(protos[strconv.Itoa(int(cp.ContainerPort))])
			if scheme == "" && cp.Name != "" {
				scheme, _, _ = strings.Cut(strings.ToLower(cp.Name), "-")
			}
			if scheme == "" {
				scheme = strings.ToLower(string(cp.Protocol))
			}
			if scheme == "" {
				scheme = "tcp"
			}
			seen[cp.ContainerPort] = true
			eps = append(eps, scheme+"://"+net.JoinHostPort(ip, strconv.Itoa(int(cp.ContainerPort))))
		}
	}
	if len(eps) == 0 {
		// Kratos' reader finds no endpoint on a Pod that declares no
		// container port; the protocol map still says which ports serve.
		ports := make([]int, 0, len(protos))
		for p := range protos {
			if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 && !seen[int32(n)] {
				ports = append(ports, n)
			}
		}
		slices.Sort(ports)
		for _, p := range ports {
			eps = append(eps, strings.ToLower(protos[strconv.Itoa(p)])+"://"+net.JoinHostPort(ip, strconv.Itoa(p)))
		}
	}
	id := pod.Labels[KratosLabelID]
	if id == "" {
		id = pod.Name
	}
	in := &registry.Instance{ID: id, Name: name, Version: pod.Labels[KratosLabelVersion], Metadata: md, Endpoints: eps}
	if err := registry.Validate(in); err != nil {
		return nil, err
	}
	return in, nil
}

// validateForKratos returns an error wrapping registry.ErrInvalid when in
// cannot be written in Kratos' layout: its name, ID and version become
// label values, and each endpoint needs a port for the protocol map.
func validateForKratos(in *registry.Instance) error {
	for _, f := range []struct{ what, v string }{{"service name", in.Name}, {"instance ID", in.ID}, {"version", in.Version}} {
		if !validLabelValue(f.v) {
			return fmt.Errorf("%w: %s: Kratos' layout puts the %s %q in a Pod label: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", registry.ErrInvalid, in, f.what, f.v)
		}
	}
	if _, err := kratosProtocols(in); err != nil {
		return err
	}
	md, err := json.Marshal(in.Metadata)
	if err != nil {
		return fmt.Errorf("%w: %s: metadata: %w", registry.ErrInvalid, in, err)
	}
	if len(md) > MaxAnnotationSize {
		return fmt.Errorf("%w: %s: metadata is %d bytes of JSON, more than the %d a Pod annotation holds here", registry.ErrInvalid, in, len(md), MaxAnnotationSize)
	}
	return nil
}

// kratosProtocols returns Kratos' protocol map of in: port -> scheme, a
// later endpoint on the same port winning, as in Kratos' Register.
func kratosProtocols(in *registry.Instance) (map[string]string, error) {
	m := make(map[string]string, len(in.Endpoints))
	for _, ep := range in.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Port() == "" {
			return nil, fmt.Errorf("%w: %s: endpoint %q has no port, which Kratos' layout needs", registry.ErrInvalid, in, ep)
		}
		m[u.Port()] = u.Scheme
	}
	return m, nil
}

// kratosPatch returns the JSON merge patch that writes in onto a Pod in
// Kratos' layout, or, for in nil, removes that layout from it.
func kratosPatch(in *registry.Instance) ([]byte, error) {
	type meta struct {
		Labels      map[string]*string `json:"labels"`
		Annotations map[string]*string `json:"annotations"`
	}
	m := meta{
		Labels:      map[string]*string{KratosLabelID: nil, KratosLabelName: nil, KratosLabelVersion: nil},
		Annotations: map[string]*string{KratosAnnotationMetadata: nil, KratosAnnotationProtocols: nil},
	}
	if in != nil {
		md := in.Metadata
		if md == nil {
			md = map[string]string{}
		}
		mdJSON, err := json.Marshal(md)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: metadata: %w", registry.ErrInvalid, in, err)
		}
		protos, err := kratosProtocols(in)
		if err != nil {
			return nil, err
		}
		pJSON, err := json.Marshal(protos)
		if err != nil {
			return nil, err
		}
		m.Labels[KratosLabelID] = ptr(in.ID)
		m.Labels[KratosLabelName] = ptr(in.Name)
		m.Labels[KratosLabelVersion] = ptr(in.Version)
		m.Annotations[KratosAnnotationMetadata] = ptr(string(mdJSON))
		m.Annotations[KratosAnnotationProtocols] = ptr(string(pJSON))
	}
	return json.Marshal(map[string]meta{"metadata": m})
}

// kratosHolds reports whether pod carries in in Kratos' layout exactly as
// kratosPatch writes it.
func kratosHolds(pod *corev1.Pod, in *registry.Instance) bool {
	if pod.Labels[KratosLabelID] != in.ID || pod.Labels[KratosLabelName] != in.Name || pod.Labels[KratosLabelVersion] != in.Version {
		return false
	}
	var md map[string]string
	if err := json.Unmarshal([]byte(pod.Annotations[KratosAnnotationMetadata]), &md); err != nil {
		return false
	}
	if len(md) != len(in.Metadata) {
		return false
	}
	for k, v := range in.Metadata {
		if w, ok := md[k]; !ok || w != v {
			return false
		}
	}
	var protos map[string]string
	if err := json.Unmarshal([]byte(pod.Annotations[KratosAnnotationProtocols]), &protos); err != nil {
		return false
	}
	want, err := kratosProtocols(in)
	if err != nil || len(want) != len(protos) {
		return false
	}
	for k, v := range want {
		if protos[k] != v {
			return false
		}
	}
	return true
}
