package microplugin

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	mreg "go-micro.dev/v4/registry"
	"go.uber.org/goleak"

	"github.com/regchain/regchain/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// greeter is a service as go-micro's server registers it, with descriptors.
func greeter() *mreg.Service {
	return &mreg.Service{
		Name:     "go.micro.srv.greeter",
		Version:  "1.0.0",
		Metadata: map[string]string{"owner": "team-a", "json": `{"x":"\u00e9"}`},
		Endpoints: []*mreg.Endpoint{
			{
				Name:     "Greeter.Hello",
				Request:  &mreg.Value{Name: "Request", Type: "Request", Values: []*mreg.Value{{Name: "name", Type: "string"}}},
				Response: &mreg.Value{Name: "Response", Type: "Response", Values: []*mreg.Value{{Name: "msg", Type: "string", Values: []*mreg.Value{}}}},
				Metadata: map[string]string{"stream": "false"},
			},
			{Name: "Greeter.Ping", Metadata: map[string]string{}},
		},
		Nodes: []*mreg.Node{
			{Id: "go.micro.srv.greeter-7c1e6b7a-9f4e-4f61-a1a4-55f1b4a8b2d1", Address: "10.0.0.1:9000",
				Metadata: map[string]string{"transport": "http", "broker": "http", "server": "mucp", "registry": "regchain", "protocol": "mucp"}},
			{Id: "go.micro.srv.greeter-0b0c", Address: "[fd00::1]:9001", Metadata: map[string]string{"transport": "grpc"}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	noMeta := greeter()
	noMeta.Metadata, noMeta.Endpoints = nil, nil
	emptyMeta := greeter()
	emptyMeta.Metadata, emptyMeta.Endpoints = map[string]string{}, []*mreg.Endpoint{}
	hostOnly := &mreg.Service{Name: "queue-worker", Nodes: []*mreg.Node{{Id: "w1", Address: "orders-queue", Metadata: map[string]string{"k": "v"}}}}
	tests := []struct {
		name    string
		svc     *mreg.Service
		wantEps []string // instance endpoints, in node order
	}{
		{"descriptors", greeter(), []string{"http://10.0.0.1:9000", "grpc://[fd00::1]:9001"}},
		{"nil metadata and endpoints", noMeta, []string{"http://10.0.0.1:9000", "grpc://[fd00::1]:9001"}},
		{"empty metadata and endpoints", emptyMeta, []string{"http://10.0.0.1:9000", "grpc://[fd00::1]:9001"}},
		{"address without port, no transport", hostOnly, []string{"micro://orders-queue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := ToInstances(tt.svc)
			if err != nil {
				t.Fatalf("ToInstances: %v", err)
			}
			if len(ins) != len(tt.svc.Nodes) {
				t.Fatalf("got %d instances, want one per node (%d)", len(ins), len(tt.svc.Nodes))
			}
			for i, in := range ins {
				if in.ID != tt.svc.Nodes[i].Id || in.Name != tt.svc.Name || in.Version != tt.svc.Version {
					t.Errorf("instance %d = %s, want %s/%s@%s", i, in, tt.svc.Name, tt.svc.Nodes[i].Id, tt.svc.Version)
				}
				if !reflect.DeepEqual(in.Endpoints, []string{tt.wantEps[i]}) {
					t.Errorf("instance %d endpoints = %q, want [%q]", i, in.Endpoints, tt.wantEps[i])
				}
				// What a backend stores must be accepted by what it reads.
				b, err := registry.Marshal(in)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				back, err := registry.Unmarshal(b)
				if err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				ins[i] = back
			}
			got := FromInstances(ins)
			if len(got) != 1 {
				t.Fatalf("FromInstances gave %d services, want 1", len(got))
			}
			want := sortedNodes(tt.svc)
			if !reflect.DeepEqual(got[0], want) {
				gj, _ := json.Marshal(got[0])
				wj, _ := json.Marshal(want)
				t.Errorf("round trip:\n got %s\nwant %s", gj, wj)
			}
			if tt.svc.Metadata != nil && got[0].Metadata == nil || tt.svc.Endpoints != nil && got[0].Endpoints == nil {
				t.Errorf("empty-but-present descriptors came back nil")
			}
		})
	}
}

// sortedNodes returns a copy of svc with its nodes sorted by ID.
func sortedNodes(svc *mreg.Service) *mreg.Service {
	c := *svc
	c.Nodes = append([]*mreg.Node(nil), svc.Nodes...)
	for i := 1; i < len(c.Nodes); i++ {
		for j := i; j > 0 && c.Nodes[j].Id < c.Nodes[j-1].Id; j-- {
			c.Nodes[j], c.Nodes[j-1] = c.Nodes[j-1], c.Nodes[j]
		}
	}
	return &c
}

func TestToInstancesInvalid(t *testing.T) {
	withNode := func(n *mreg.Node) *mreg.Service {
		s := greeter()
		s.Nodes = []*mreg.Node{n}
		return s
	}
	tests := []struct {
		name string
		svc  *mreg.Service
		want string // in the error message
	}{
		{"nil service", nil, "nil service"},
		{"empty name", &mreg.Service{Nodes: greeter().Nodes}, "service name is empty"},
		{"slash in name", &mreg.Service{Name: "a/b", Nodes: greeter().Nodes}, `service name "a/b" has '/'`},
		{"no nodes", &mreg.Service{Name: "svc"}, `service "svc" has no nodes`},
		{"nil node", withNode(nil), "node 0 is nil"},
		{"empty id", withNode(&mreg.Node{Address: "1.2.3.4:5"}), "instance id is empty"},
		{"space in id", withNode(&mreg.Node{Id: "a b", Address: "1.2.3.4:5"}), `instance id "a b" has ' '`},
		{"empty address", withNode(&mreg.Node{Id: "n1"}), "empty address"},
		{"address with path", withNode(&mreg.Node{Id: "n1", Address: "1.2.3.4:5/x"}), `address "1.2.3.4:5/x" is not a URL host`},
		{"address with user", withNode(&mreg.Node{Id: "n1", Address: "u@1.2.3.4:5"}), "is not a URL host"},
		{"bad port", withNode(&mreg.Node{Id: "n1", Address: "h:abc"}), "is not a URL host"},
		{"reserved key", withNode(&mreg.Node{Id: "n1", Address: "1.2.3.4:5", Metadata: map[string]string{MetadataKeyEndpoints: "x"}}), `metadata key "micro-service-endpoints" is reserved`},
		{"duplicate node", &mreg.Service{Name: "svc", Nodes: []*mreg.Node{{Id: "n", Address: "h:1"}, {Id: "n", Address: "h:2"}}}, `node id "n" appears twice`},
		{"version with control char", &mreg.Service{Name: "svc", Version: "v\n1", Nodes: []*mreg.Node{{Id: "n", Address: "h:1"}}}, "control character"},
		{"oversized metadata", &mreg.Service{Name: "svc", Metadata: map[string]string{"big": strings.Repeat("x", registry.MaxMetadataSize)}, Nodes: []*mreg.Node{{Id: "n", Address: "h:1"}}}, "metadata is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := ToInstances(tt.svc)
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("err = %v, want one wrapping registry.ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
			if ins != nil {
				t.Errorf("got %d instances with the error, want none", len(ins))
			}
		})
	}
}

func TestSchemeFromTransport(t *testing.T) {
	tests := map[string]string{
		"": "micro", "http": "http", "GRPC": "grpc", "h2+tls": "h2+tls", "quic-v1.0": "quic-v1.0",
		"1abc": "micro", "a b": "micro", "nats://": "micro", "é": "micro",
	}
	for transport, want := range tests {
		if got := scheme(transport); got != want {
			t.Errorf("scheme(%q) = %q, want %q", transport, got, want)
		}
	}
}

func TestFromInstances(t *testing.T) {
	eps, _ := json.Marshal([]*mreg.Endpoint{{Name: "Greeter.Hello"}})
	tests := []struct {
		name string
		ins  []*registry.Instance
		want []*mreg.Service
	}{
		{
			name: "kratos instance: first endpoint in sorted order, metadata kept",
			ins: []*registry.Instance{{ID: "k1", Name: "helloworld", Version: "v1", Metadata: map[string]string{"zone": "z1"},
				Endpoints: []string{"http://10.0.0.1:8000", "grpc://10.0.0.1:9000?isSecure=false"}}},
			want: []*mreg.Service{{Name: "helloworld", Version: "v1", Nodes: []*mreg.Node{{Id: "k1", Address: "10.0.0.1:9000", Metadata: map[string]string{"zone": "z1"}}}}},
		},
		{
			name: "versions grouped and sorted, nodes sorted, descriptors of the first node",
			ins: []*registry.Instance{
				{ID: "b", Name: "s", Version: "2", Endpoints: []string{"micro://h:2"}},
				{ID: "c", Name: "s", Version: "1", Endpoints: []string{"micro://h:3"}, Metadata: map[string]string{MetadataKeyService: `{"a":"2"}`}},
				{ID: "a", Name: "s", Version: "1", Endpoints: []string{"micro://h:1"}, Metadata: map[string]string{MetadataKeyService: `{"a":"1"}`, MetadataKeyEndpoints: string(eps)}},
			},
			want: []*mreg.Service{
				{Name: "s", Version: "1", Metadata: map[string]string{"a": "1"}, Endpoints: []*mreg.Endpoint{{Name: "Greeter.Hello"}},
					Nodes: []*mreg.Node{{Id: "a", Address: "h:1"}, {Id: "c", Address: "h:3"}}},
				{Name: "s", Version: "2", Nodes: []*mreg.Node{{Id: "b", Address: "h:2"}}},
			},
		},
		{
			name: "corrupt descriptors dropped, node kept",
			ins: []*registry.Instance{{ID: "a", Name: "s", Endpoints: []string{"micro://h:1"},
				Metadata: map[string]string{MetadataKeyService: `{"a":1}`, MetadataKeyEndpoints: `[{"name":`, "k": "v"}}},
			want: []*mreg.Service{{Name: "s", Nodes: []*mreg.Node{{Id: "a", Address: "h:1", Metadata: map[string]string{"k": "v"}}}}},
		},
		{
			name: "instance without a host left out, nil skipped",
			ins:  []*registry.Instance{nil, {ID: "a", Name: "s", Endpoints: []string{"unix:/tmp/sock"}}, {ID: "b", Name: "s", Endpoints: []string{"micro://h:2"}}},
			want: []*mreg.Service{{Name: "s", Nodes: []*mreg.Node{{Id: "b", Address: "h:2"}}}},
		},
		{
			name: "nothing usable",
			ins:  []*registry.Instance{{ID: "a", Name: "s"}},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromInstances(tt.ins)
			if !reflect.DeepEqual(got, tt.want) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(tt.want)
				t.Errorf("FromInstances:\n got %s\nwant %s", gj, wj)
			}
		})
	}
}

func TestFromInstancesReportsProblems(t *testing.T) {
	_, problems := fromInstances([]*registry.Instance{
		{ID: "a", Name: "s", Endpoints: []string{"micro://h:1"}, Metadata: map[string]string{MetadataKeyEndpoints: "nope"}},
		{ID: "b", Name: "s", Endpoints: []string{"/no/host"}},
	}, false)
	if len(problems) != 2 {
		t.Fatalf("got problems %v, want 2 (bad descriptor, no host)", problems)
	}
	for _, p := range problems {
		if !errors.Is(p, registry.ErrInvalid) {
			t.Errorf("problem %v does not wrap registry.ErrInvalid", p)
		}
	}
}

// FuzzFromInstances feeds arbitrary stored data to the decoder: it must never
// panic, and every node it returns must have an ID and an address.
func FuzzFromInstances(f *testing.F) {
	f.Add("s", "v1", "micro://h:1", `{"a":"b"}`, `[{"name":"X","request":{"name":"r","values":[{"name":"n"}]}}]`)
	f.Add("s", "", "grpc://[::1]:9000", `null`, `[null]`)
	f.Add("s", "", ":", `{`, `[[[[`)
	f.Fuzz(func(t *testing.T, name, version, endpoint, md, eps string) {
		in := &registry.Instance{ID: "id", Name: name, Version: version, Endpoints: []string{endpoint},
			Metadata: map[string]string{MetadataKeyService: md, MetadataKeyEndpoints: eps}}
		for _, svc := range FromInstances([]*registry.Instance{in}) {
			for _, n := range svc.Nodes {
				if n.Id == "" || n.Address == "" {
					t.Fatalf("node %+v without id or address", n)
				}
			}
		}
		var d differ
		d.apply(&registry.Update{Service: name, Instances: []*registry.Instance{in}})
	})
}
