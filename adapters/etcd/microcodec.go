package etcd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"

	"github.com/regchain/regchain/registry"
)

// Codec selects how instances are stored in etcd.
type Codec int

const (
	// CodecRegchain stores each instance as its JSON (registry.Marshal),
	// the layout of Kratos' contrib etcd registry. It is the default.
	CodecRegchain Codec = iota
	// CodecMicro stores each instance the way the go-micro etcd plugin
	// (github.com/go-micro/plugins/v4/registry/etcd) stores a node: key
	// <Namespace>/<name>/<node id> with Namespace "/micro/registry" by
	// default, value the JSON of a go-micro registry.Service holding that
	// one node. Nodes registered by the plugin and by regchain see each
	// other, so a go-micro fleet can move to regchain one node at a time.
	// Records in the regchain layout under the same namespace are read too.
	CodecMicro
)

// MicroNamespace is the go-micro etcd plugin's key prefix, the default
// Namespace with CodecMicro.
const MicroNamespace = "/micro/registry"

// Reserved instance metadata keys of CodecMicro, the same as package
// microplugin's: they carry the go-micro service's metadata and RPC
// endpoint descriptors as JSON, so that microplugin gives back the very
// Service the plugin registered.
const (
	microKeyService   = "micro-service-metadata"
	microKeyEndpoints = "micro-service-endpoints"
	// microKeyURLs holds an instance's endpoint URLs as a JSON array when
	// they are not the single "<transport>://<address>" a go-micro node
	// implies (a Kratos instance with several endpoints).
	microKeyURLs = "regchain-endpoints"
	// microDefaultScheme is microplugin.DefaultScheme.
	microDefaultScheme = "micro"
)

// microService and microNode are the JSON of go-micro's registry.Service and
// registry.Node; endpoint descriptors are kept as raw JSON.
type microService struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Metadata  map[string]string `json:"metadata"`
	Endpoints json.RawMessage   `json:"endpoints"`
	Nodes     []*microNode      `json:"nodes"`
}

type microNode struct {
	ID       string            `json:"id"`
	Address  string            `json:"address"`
	Metadata map[string]string `json:"metadata"`
}

// marshal encodes in with the registry's codec.
func (r *Registry) marshal(in *registry.Instance) ([]byte, error) {
	if r.codec == CodecMicro {
		return marshalMicro(in)
	}
	return registry.Marshal(in)
}

// unmarshal decodes a record with the registry's codec.
func (r *Registry) unmarshal(data []byte) (*registry.Instance, error) {
	if r.codec == CodecMicro {
		return unmarshalMicro(data)
	}
	return registry.Unmarshal(data)
}

// nodeURL is the endpoint URL a go-micro node implies, as microplugin
// builds it: the node's "transport" metadata (or "micro") and its address.
func nodeURL(address string, md map[string]string) string {
	scheme := md["transport"]
	if _, err := url.Parse(scheme + "://x"); scheme == "" || err != nil || scheme[0] < 'a' || scheme[0] > 'z' {
		scheme = microDefaultScheme
	}
	return scheme + "://" + address
}

// marshalMicro encodes in as a go-micro service with one node.
func marshalMicro(in *registry.Instance) ([]byte, error) {
	if err := registry.Validate(in); err != nil {
		return nil, err
	}
	svc := microService{Name: in.Name, Version: in.Version}
	node := &microNode{ID: in.ID, Metadata: map[string]string{}}
	for k, v := range in.Metadata {
		switch k {
		case microKeyService:
			if err := json.Unmarshal([]byte(v), &svc.Metadata); err != nil {
				return nil, fmt.Errorf("%w: metadata %s is not a JSON object: %s", registry.ErrInvalid, registry.Quote(k), registry.Quote(err.Error()))
			}
		case microKeyEndpoints:
			if !json.Valid([]byte(v)) {
				return nil, fmt.Errorf("%w: metadata %s is not JSON", registry.ErrInvalid, registry.Quote(k))
			}
			svc.Endpoints = json.RawMessage(v)
		default:
			node.Metadata[k] = v
		}
	}
	if u, err := url.Parse(in.Endpoints[0]); err == nil {
		node.Address = u.Host
	}
	if len(in.Endpoints) != 1 || in.Endpoints[0] != nodeURL(node.Address, node.Metadata) {
		urls, _ := json.Marshal(in.Endpoints)
		node.Metadata[microKeyURLs] = string(urls)
	}
	if len(node.Metadata) == 0 {
		node.Metadata = nil
	}
	svc.Nodes = []*microNode{node}
	return json.Marshal(&svc)
}

// unmarshalMicro decodes a go-micro record (one node, as the plugin writes
// them), or a regchain record.
func unmarshalMicro(data []byte) (*registry.Instance, error) {
	if len(data) > registry.MaxRecordSize {
		return nil, fmt.Errorf("%w: record is %d bytes, more than %d", registry.ErrInvalid, len(data), registry.MaxRecordSize)
	}
	var probe struct {
		Nodes json.RawMessage `json:"nodes"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: decode record: %s", registry.ErrInvalid, registry.Quote(err.Error()))
	}
	if probe.Nodes == nil {
		return registry.Unmarshal(data) // a regchain record
	}
	var svc microService
	if err := json.Unmarshal(data, &svc); err != nil {
		return nil, fmt.Errorf("%w: decode go-micro service: %s", registry.ErrInvalid, registry.Quote(err.Error()))
	}
	if len(svc.Nodes) != 1 || svc.Nodes[0] == nil {
		return nil, fmt.Errorf("%w: go-micro record with %d nodes, want 1", registry.ErrInvalid, len(svc.Nodes))
	}
	node := svc.Nodes[0]
	in := &registry.Instance{ID: node.ID, Name: svc.Name, Version: svc.Version}
	md := maps.Clone(node.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	if raw, ok := md[microKeyURLs]; ok {
		delete(md, microKeyURLs)
		if err := json.Unmarshal([]byte(raw), &in.Endpoints); err != nil {
			return nil, fmt.Errorf("%w: metadata %q: %s", registry.ErrInvalid, microKeyURLs, registry.Quote(err.Error()))
		}
	} else {
		in.Endpoints = []string{nodeURL(node.Address, md)}
	}
	if svc.Metadata != nil {
		b, _ := json.Marshal(svc.Metadata)
		md[microKeyService] = string(b)
	}
	if len(svc.Endpoints) > 0 && !bytes.Equal(svc.Endpoints, []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, svc.Endpoints); err != nil {
			return nil, fmt.Errorf("%w: endpoints: %w", registry.ErrInvalid, err)
		}
		md[microKeyEndpoints] = buf.String()
	}
	if len(md) > 0 {
		in.Metadata = md
	}
	if err := registry.Validate(in); err != nil {
		return nil, fmt.Errorf("decode go-micro record: %w", err)
	}
	return in, nil
}
