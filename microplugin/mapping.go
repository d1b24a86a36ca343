package microplugin

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// Reserved instance metadata keys. They carry the parts of a go-micro Service
// that an Instance has no field for; they use only letters and '-' so that
// every backend accepts them as metadata keys. A node whose own metadata uses
// one of them cannot be registered.
const (
	// MetadataKeyService holds the go-micro service metadata as a JSON object.
	// It is absent when the service's Metadata is nil.
	MetadataKeyService = "micro-service-metadata"
	// MetadataKeyEndpoints holds the service's RPC endpoint descriptors
	// ([]*registry.Endpoint of go-micro) as a JSON array. It is absent when the
	// service's Endpoints are nil.
	MetadataKeyEndpoints = "micro-service-endpoints"
)

// DefaultScheme is the scheme of an instance endpoint URL when the node's
// "transport" metadata (set by go-micro's server: "http", "grpc", ...) is
// absent or not a valid URL scheme.
const DefaultScheme = "micro"

// ToInstances maps a go-micro service to one Instance per node: ID is the
// node ID, Name and Version the service's, Metadata the node's metadata plus
// the reserved keys MetadataKeyService and MetadataKeyEndpoints, and
// Endpoints the single URL "<scheme>://<node address>", where scheme is the
// node's "transport" metadata or DefaultScheme.
//
// It returns an error wrapping registry.ErrInvalid, and no instances, when the
// service has no nodes, a node has an empty or duplicate ID, an address that
// is not a URL host ("host:port", "[::1]:port" or "host"), metadata that uses
// a reserved key, or when an instance would not pass registry.Validate.
func ToInstances(svc *mreg.Service) ([]*registry.Instance, error) {
	if svc == nil {
		return nil, fmt.Errorf("microplugin: %w: nil service", registry.ErrInvalid)
	}
	if err := registry.ValidateName(svc.Name); err != nil {
		return nil, fmt.Errorf("microplugin: service: %w", err)
	}
	if len(svc.Nodes) == 0 {
		return nil, fmt.Errorf("microplugin: %w: service %s has no nodes", registry.ErrInvalid, registry.Quote(svc.Name))
	}
	var reserved [][2]string
	if svc.Metadata != nil {
		b, err := json.Marshal(svc.Metadata)
		if err != nil {
			return nil, fmt.Errorf("microplugin: %w: service %s: encode metadata: %w", registry.ErrInvalid, registry.Quote(svc.Name), err)
		}
		reserved = append(reserved, [2]string{MetadataKeyService, string(b)})
	}
	if svc.Endpoints != nil {
		b, err := json.Marshal(svc.Endpoints)
		if err != nil {
			return nil, fmt.Errorf("microplugin: %w: service %s: encode endpoints: %w", registry.ErrInvalid, registry.Quote(svc.Name), err)
		}
		reserved = append(reserved, [2]string{MetadataKeyEndpoints, string(b)})
	}
	out := make([]*registry.Instance, 0, len(svc.Nodes))
	seen := make(map[string]bool, len(svc.Nodes))
	for i, node := range svc.Nodes {
		if node == nil {
			return nil, fmt.Errorf("microplugin: %w: service %s: node %d is nil", registry.ErrInvalid, registry.Quote(svc.Name), i)
		}
		if err := registry.ValidateID(node.Id); err != nil {
			return nil, fmt.Errorf("microplugin: service %s: node: %w", registry.Quote(svc.Name), err)
		}
		if seen[node.Id] {
			return nil, fmt.Errorf("microplugin: %w: service %s: node id %s appears twice", registry.ErrInvalid, registry.Quote(svc.Name), registry.Quote(node.Id))
		}
		seen[node.Id] = true
		for _, k := range []string{MetadataKeyService, MetadataKeyEndpoints} {
			if _, ok := node.Metadata[k]; ok {
				return nil, fmt.Errorf("microplugin: %w: service %s: node %s: metadata key %s is reserved", registry.ErrInvalid, registry.Quote(svc.Name), registry.Quote(node.Id), registry.Quote(k))
			}
		}
		ep, err := endpointURL(node)
		if err != nil {
			return nil, fmt.Errorf("microplugin: %w: service %s: node %s: %w", registry.ErrInvalid, registry.Quote(svc.Name), registry.Quote(node.Id), err)
		}
		md := make(map[string]string, len(node.Metadata)+len(reserved))
		maps.Copy(md, node.Metadata)
		for _, kv := range reserved {
			md[kv[0]] = kv[1]
		}
		in := &registry.Instance{
			ID:        node.Id,
			Name:      svc.Name,
			Version:   svc.Version,
			Metadata:  md,
			Endpoints: []string{ep},
		}
		if err := registry.Validate(in); err != nil {
			return nil, fmt.Errorf("microplugin: %w", err)
		}
		out = append(out, in)
	}
	return out, nil
}

// endpointURL returns "<scheme>://<address>" and checks that the URL's host
// is exactly the address, so that the address comes back unchanged.
func endpointURL(node *mreg.Node) (string, error) {
	if node.Address == "" {
		return "", fmt.Errorf("empty address")
	}
	ep := scheme(node.Metadata["transport"]) + "://" + node.Address
	u, err := url.Parse(ep)
	if err != nil || u.Host != node.Address {
		return "", fmt.Errorf("address %s is not a URL host (host:port, [ipv6]:port or host)", registry.Quote(node.Address))
	}
	return ep, nil
}

// scheme returns transport lower-cased if it is a valid URL scheme (RFC 3986:
// a letter, then letters, digits, '+', '-', '.'), else DefaultScheme.
func scheme(transport string) string {
	t := strings.ToLower(transport)
	if t == "" || t[0] < 'a' || t[0] > 'z' {
		return DefaultScheme
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return DefaultScheme
		}
	}
	return t
}

// FromInstances maps instances back to go-micro services: one Service per
// (name, version), sorted by name then version, each with its nodes sorted
// by ID. The service metadata and endpoint descriptors are decoded from the
// reserved keys of the group's first instance (by ID); the reserved keys are
// removed from node metadata, and empty node metadata comes back nil.
//
// Instances written by something else (a Kratos app, say) are mapped too:
// the node address is the host of the first endpoint, in sorted order, that
// has one. It never fails and never panics on bad stored data: an instance
// with no endpoint that has a host is left out, an undecodable descriptor is
// dropped from its service (the node is kept). The Registry logs both.
func FromInstances(ins []*registry.Instance) []*mreg.Service {
	svcs, _ := fromInstances(ins, false)
	return svcs
}

// fromInstances implements FromInstances. With byDescriptors, instances of
// the same version but different reserved values go to different services
// (watch results carry each node's own descriptors); otherwise the first
// instance's win, as go-micro's own registries do. problems lists what was
// left out or dropped.
func fromInstances(ins []*registry.Instance, byDescriptors bool) (svcs []*mreg.Service, problems []error) {
	type item struct {
		in  *registry.Instance
		key string // name, version and, with byDescriptors, the reserved values
	}
	items := make([]item, 0, len(ins))
	for _, in := range ins {
		if in == nil {
			continue
		}
		key := in.Name + "\x00" + in.Version + "\x00"
		if byDescriptors {
			key += groupKey(in)
		}
		items = append(items, item{in, key})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.in.ID, b.in.ID)
	})
	var cur *mreg.Service
	var curKey string
	for _, it := range items {
		node, err := toNode(it.in)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if cur == nil || it.key != curKey {
			var perr []error
			cur, perr = serviceOf(it.in)
			problems = append(problems, perr...)
			curKey = it.key
			svcs = append(svcs, cur)
		}
		cur.Nodes = append(cur.Nodes, node)
	}
	return svcs, problems
}

// groupKey distinguishes absent reserved values from present ones.
func groupKey(in *registry.Instance) string {
	var b strings.Builder
	for _, k := range []string{MetadataKeyService, MetadataKeyEndpoints} {
		if v, ok := in.Metadata[k]; ok {
			b.WriteByte('+')
			b.WriteString(v)
		} else {
			b.WriteByte('-')
		}
		b.WriteByte(0)
	}
	return b.String()
}

// serviceOf returns a service without nodes carrying in's name, version and
// decoded descriptors.
func serviceOf(in *registry.Instance) (*mreg.Service, []error) {
	svc := &mreg.Service{Name: in.Name, Version: in.Version}
	var problems []error
	if v, ok := in.Metadata[MetadataKeyService]; ok {
		var md map[string]string
		if err := json.Unmarshal([]byte(v), &md); err != nil {
			problems = append(problems, fmt.Errorf("microplugin: %s: %w: decode %s: %s", in, registry.ErrInvalid, MetadataKeyService, registry.Quote(err.Error())))
		} else {
			svc.Metadata = md
		}
	}
	if v, ok := in.Metadata[MetadataKeyEndpoints]; ok {
		var eps []*mreg.Endpoint
		if err := json.Unmarshal([]byte(v), &eps); err != nil {
			problems = append(problems, fmt.Errorf("microplugin: %s: %w: decode %s: %s", in, registry.ErrInvalid, MetadataKeyEndpoints, registry.Quote(err.Error())))
		} else {
			svc.Endpoints = eps
		}
	}
	return svc, problems
}

// toNode maps in to a node, or fails when no endpoint has a host.
func toNode(in *registry.Instance) (*mreg.Node, error) {
	eps := slices.Clone(in.Endpoints)
	slices.Sort(eps)
	addr := ""
	for _, ep := range eps {
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			addr = u.Host
			break
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("microplugin: %s: %w: no endpoint with a host in %s", in, registry.ErrInvalid, registry.Quote(strings.Join(in.Endpoints, " ")))
	}
	var md map[string]string
	for k, v := range in.Metadata {
		if k == MetadataKeyService || k == MetadataKeyEndpoints {
			continue
		}
		if md == nil {
			md = make(map[string]string, len(in.Metadata))
		}
		md[k] = v
	}
	return &mreg.Node{Id: in.ID, Address: addr, Metadata: md}, nil
}
