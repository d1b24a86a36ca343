package microplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"

	"github.com/regchain/regchain/registry"
)

// EtcdNamespace is the go-micro etcd plugin's key prefix: EtcdCodec's
// namespace.
const EtcdNamespace = "/micro/registry"

// metadataKeyURLs holds an instance's endpoint URLs as a JSON array in a
// go-micro record when they are not the single "<scheme>://<address>" a
// go-micro node implies (a Kratos instance with several endpoints).
const metadataKeyURLs = "regchain-endpoints"

// EtcdCodec is the etcd adapter's Codec (etcd.Config.Codec) for the
// go-micro etcd plugin's layout (github.com/go-micro/plugins/v4/registry/etcd):
// key <Namespace>/<name>/<node id> with Namespace EtcdNamespace by default,
// value the JSON of a go-micro registry.Service holding that one node, as
// ToInstances and FromInstances map it. Nodes registered by the plugin and
// by regchain see each other, so a go-micro fleet can move to regchain one
// node at a time. Records in the default (Kratos) layout under the same
// namespace are read too.
//
//	r, err := etcd.New(etcd.Config{Endpoints: eps, Codec: microplugin.EtcdCodec{}})
//
// etcdchain.NewRegistry uses it by default. EtcdCodec is safe for
// concurrent use.
type EtcdCodec struct{}

// microService and microNode are the JSON of go-micro's registry.Service and
// registry.Node; endpoint descriptors are kept as raw JSON, so that a
// record goes back byte for byte.
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

// Namespace implements etcd.Codec: EtcdNamespace.
func (EtcdCodec) Namespace() string { return EtcdNamespace }

// nodeURL is the endpoint URL a go-micro node implies (see ToInstances).
func nodeURL(address string, md map[string]string) string {
	return scheme(md["transport"]) + "://" + address
}

// Encode implements etcd.Codec: in as a go-micro service with one node.
// The reserved keys MetadataKeyService and MetadataKeyEndpoints become the
// service's metadata and endpoint descriptors again.
func (EtcdCodec) Encode(in *registry.Instance) ([]byte, error) {
	if err := registry.Validate(in); err != nil {
		return nil, err
	}
	svc := microService{Name: in.Name, Version: in.Version}
	node := &microNode{ID: in.ID, Metadata: map[string]string{}}
	for k, v := range in.Metadata {
		switch k {
		case MetadataKeyService:
			if err := json.Unmarshal([]byte(v), &svc.Metadata); err != nil {
				return nil, fmt.Errorf("%w: metadata %s is not a JSON object: %s", registry.ErrInvalid, registry.Quote(k), registry.Quote(err.Error()))
			}
		case MetadataKeyEndpoints:
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
		node.Metadata[metadataKeyURLs] = string(urls)
	}
	if len(node.Metadata) == 0 {
		node.Metadata = nil
	}
	svc.Nodes = []*microNode{node}
	return json.Marshal(&svc)
}

// Decode implements etcd.Codec: a go-micro record (one node, as the
// plugin writes them), or a record in the default layout.
func (EtcdCodec) Decode(data []byte) (*registry.Instance, error) {
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
		return registry.Unmarshal(data) // a record in the default layout
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
	if raw, ok := md[metadataKeyURLs]; ok {
		delete(md, metadataKeyURLs)
		if err := json.Unmarshal([]byte(raw), &in.Endpoints); err != nil {
			return nil, fmt.Errorf("%w: metadata %q: %s", registry.ErrInvalid, metadataKeyURLs, registry.Quote(err.Error()))
		}
	} else {
		in.Endpoints = []string{nodeURL(node.Address, md)}
	}
	if svc.Metadata != nil {
		b, _ := json.Marshal(svc.Metadata)
		md[MetadataKeyService] = string(b)
	}
	if len(svc.Endpoints) > 0 && !bytes.Equal(svc.Endpoints, []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, svc.Endpoints); err != nil {
			return nil, fmt.Errorf("%w: endpoints: %w", registry.ErrInvalid, err)
		}
		md[MetadataKeyEndpoints] = buf.String()
	}
	if len(md) > 0 {
		in.Metadata = md
	}
	if err := registry.Validate(in); err != nil {
		return nil, fmt.Errorf("decode go-micro record: %w", err)
	}
	return in, nil
}
