package consul

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"strings"
	"testing"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// asService returns what the agent gives back for a registration: the same
// fields, plus the tagged addresses it derives from an IP address.
func asService(asr *consulapi.AgentServiceRegistration) *consulapi.AgentService {
	ta := maps.Clone(asr.TaggedAddresses)
	if ip := net.ParseIP(asr.Address); ip != nil {
		a := consulapi.ServiceAddress{Address: asr.Address, Port: asr.Port}
		if ip.To4() != nil {
			ta["lan_ipv4"], ta["wan_ipv4"] = a, a
		} else {
			ta["lan_ipv6"], ta["wan_ipv6"] = a, a
		}
	}
	return &consulapi.AgentService{
		ID: asr.ID, Service: asr.Name, Tags: asr.Tags, Meta: asr.Meta,
		Port: asr.Port, Address: asr.Address, TaggedAddresses: ta,
	}
}

var consulMetaKey = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// consulAccepts mirrors Consul's validateMetadata (agent/structs).
func consulAccepts(meta map[string]string) error {
	if len(meta) > MaxMetaPairs {
		return fmt.Errorf("%d pairs", len(meta))
	}
	for k, v := range meta {
		switch {
		case !consulMetaKey.MatchString(k):
			return fmt.Errorf("key %q: invalid characters", k)
		case len(k) > MaxMetaKeyLen:
			return fmt.Errorf("key %q: too long", k)
		case strings.HasPrefix(k, "consul-"):
			return fmt.Errorf("key %q: reserved prefix", k)
		case len(v) > MaxMetaValueLen:
			return fmt.Errorf("key %q: value of %d bytes", k, len(v))
		}
	}
	return nil
}

func manyKeys(n int, value string) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%03d", i)] = value
	}
	return m
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	base := func() *registry.Instance {
		return &registry.Instance{ID: "i1", Name: "svc", Version: "v1.2.3", Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false"}}
	}
	with := func(f func(*registry.Instance)) *registry.Instance { in := base(); f(in); return in }
	cases := []struct {
		name  string
		in    *registry.Instance
		spill bool // some metadata must be spilled
	}{
		{"minimal", base(), false},
		{"no version, nil metadata", with(func(in *registry.Instance) { in.Version = "" }), false},
		{"kratos-like", with(func(in *registry.Instance) {
			in.Metadata = map[string]string{"weight": "10", "zone": "z1", "empty": ""}
			in.Endpoints = []string{"grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000"}
		}), false},
		{"same scheme thrice", with(func(in *registry.Instance) {
			in.Endpoints = []string{"grpc://127.0.0.1:9010", "grpc://127.0.0.1:9011", "http://[::1]:8080/path?x=1", "grpc://h:1"}
		}), false},
		{"duplicate endpoints", with(func(in *registry.Instance) {
			in.Endpoints = []string{"grpc://a:1", "grpc://a:1"}
		}), false},
		{"no port, ipv6 first, upper-case scheme", with(func(in *registry.Instance) {
			in.Endpoints = []string{"http://[fe80::1]", "HTTP://example.com", "tcp://example.com:70000"}
		}), false},
		{"odd keys", with(func(in *registry.Instance) {
			in.Metadata = map[string]string{"go.micro.key": "1", "a b": "2", "ünï": "çødé", "json": `{"a":[1,2]}`, "consul-x": "3", "regchain-id": "mine", "regchain-md-0": "also mine", "regchain-other": "native"}
		}), true},
		{"long key and values", with(func(in *registry.Instance) {
			in.Metadata = map[string]string{strings.Repeat("k", 200): "v", "big": strings.Repeat("é", 700), "exact": strings.Repeat("x", MaxMetaValueLen)}
		}), true},
		{"63 keys fit", with(func(in *registry.Instance) { in.Metadata = manyKeys(63, "v") }), false},
		{"64 keys spill", with(func(in *registry.Instance) { in.Metadata = manyKeys(64, "v") }), true},
		{"500 keys", with(func(in *registry.Instance) { in.Metadata = manyKeys(500, "v") }), true},
		{"24 KiB of values", with(func(in *registry.Instance) { in.Metadata = manyKeys(40, strings.Repeat("ü", 300)) }), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := registry.Validate(c.in); err != nil {
				t.Fatalf("bad case: %v", err)
			}
			for _, sid := range []string{c.in.ID, qualifiedID(c.in.Name, c.in.ID)} {
				asr, err := encode(c.in, sid)
				if err != nil {
					t.Fatalf("encode(%q): %v", sid, err)
				}
				if err := consulAccepts(asr.Meta); err != nil {
					t.Errorf("encode(%q): Consul would refuse the meta: %v", sid, err)
				}
				spilled := false
				for k := range asr.Meta {
					if _, ok := spillIndex(k); ok {
						spilled = true
					}
				}
				if spilled != c.spill {
					t.Errorf("encode(%q): spilled = %v, want %v", sid, spilled, c.spill)
				}
				if asr.ID != sid || asr.Name != c.in.Name {
					t.Errorf("ID, Name = %q, %q; want %q, %q", asr.ID, asr.Name, sid, c.in.Name)
				}
				got, err := decode(asService(asr), "10.9.9.9")
				if err != nil {
					t.Fatalf("decode(encode(%q)): %v", sid, err)
				}
				if !got.Equal(c.in) {
					t.Errorf("round trip via %q:\n got %+v\nwant %+v", sid, got, c.in)
				}
			}
		})
	}
}

// TestEncodeKratosLayout pins the layout Kratos' contrib registry writes.
func TestEncodeKratosLayout(t *testing.T) {
	in := &registry.Instance{
		ID: "id1", Name: "helloworld", Version: "v1",
		Metadata:  map[string]string{"weight": "10"},
		Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000", "grpc://10.0.0.2:9001"},
	}
	asr, err := encode(in, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]consulapi.ServiceAddress{
		"grpc":   {Address: "grpc://10.0.0.1:9000?isSecure=false", Port: 9000},
		"http":   {Address: "http://10.0.0.1:8000", Port: 8000},
		"grpc_1": {Address: "grpc://10.0.0.2:9001", Port: 9001},
	}
	if !maps.Equal(asr.TaggedAddresses, want) {
		t.Errorf("TaggedAddresses = %v, want %v", asr.TaggedAddresses, want)
	}
	if asr.ID != "id1" || asr.Address != "10.0.0.1" || asr.Port != 9000 {
		t.Errorf("ID, Address, Port = %q, %q, %d; want id1, 10.0.0.1, 9000", asr.ID, asr.Address, asr.Port)
	}
	if len(asr.Tags) != 1 || asr.Tags[0] != "version=v1" {
		t.Errorf("Tags = %v, want [version=v1]", asr.Tags)
	}
	if !maps.Equal(asr.Meta, in.Metadata) {
		t.Errorf("Meta = %v, want the metadata %v", asr.Meta, in.Metadata)
	}
}

func TestEncodeTooBig(t *testing.T) {
	in := &registry.Instance{ID: "i", Name: "s", Endpoints: []string{"grpc://a:1"}, Metadata: manyKeys(100, strings.Repeat("v", 400))}
	_, err := encode(in, in.ID)
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "does not fit Consul service meta") {
		t.Fatalf("encode 40 KB of metadata: %v, want ErrInvalid saying it does not fit", err)
	}
	t.Logf("error: %v", err)
}

func TestDecodeForeign(t *testing.T) {
	cases := []struct {
		name string
		svc  *consulapi.AgentService
		node string
		want *registry.Instance // nil: an error
	}{
		{"kratos contrib", &consulapi.AgentService{
			ID: "k1", Service: "hello", Tags: []string{"version=v2"}, Meta: map[string]string{"a": "b"},
			Address: "10.0.0.1", Port: 9000,
			TaggedAddresses: map[string]consulapi.ServiceAddress{
				"grpc":     {Address: "grpc://10.0.0.1:9000", Port: 9000},
				"lan_ipv4": {Address: "10.0.0.1", Port: 9000},
			},
		}, "", &registry.Instance{ID: "k1", Name: "hello", Version: "v2", Metadata: map[string]string{"a": "b"}, Endpoints: []string{"grpc://10.0.0.1:9000"}}},
		{"plain service", &consulapi.AgentService{ID: "web-1", Service: "web", Address: "10.0.0.2", Port: 80, Tags: []string{"primary"}},
			"", &registry.Instance{ID: "web-1", Name: "web", Endpoints: []string{"http://10.0.0.2:80"}}},
		{"node address", &consulapi.AgentService{ID: "db", Service: "db", Port: 5432},
			"10.1.1.1", &registry.Instance{ID: "db", Name: "db", Endpoints: []string{"http://10.1.1.1:5432"}}},
		{"last version tag wins", &consulapi.AgentService{ID: "x", Service: "x", Port: 1, Address: "h", Tags: []string{"version=a", "version=b=c"}},
			"", &registry.Instance{ID: "x", Name: "x", Version: "b=c", Endpoints: []string{"http://h:1"}}},
		{"no endpoint", &consulapi.AgentService{ID: "x", Service: "x"}, "10.0.0.1", nil},
		{"invalid id", &consulapi.AgentService{ID: "a/b", Service: "x", Port: 1, Address: "h"}, "", nil},
		{"missing chunk", &consulapi.AgentService{ID: "x", Service: "x", Port: 1, Address: "h", Meta: map[string]string{"regchain-md-1": `{}`}}, "", nil},
		{"bad spill", &consulapi.AgentService{ID: "x", Service: "x", Port: 1, Address: "h", Meta: map[string]string{"regchain-md-0": `{"a":`}}, "", nil},
		{"spill not an object", &consulapi.AgentService{ID: "x", Service: "x", Port: 1, Address: "h", Meta: map[string]string{"regchain-md-0": `[1]`}}, "", nil},
		{"nil", nil, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decode(c.svc, c.node)
			if c.want == nil {
				if !errors.Is(err, registry.ErrInvalid) {
					t.Fatalf("decode = %+v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.Equal(c.want) {
				t.Errorf("decode = %+v, want %+v", got, c.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("id", "svc", "version=v1", "k", "v", "grpc", "grpc://h:1", "10.0.0.1", 80)
	f.Add("id", "svc", "", "regchain-md-0", `{"a.b":"c"}`, "grpc_1", "grpc://h:1", "", 0)
	f.Add("id", "svc", "version=", "regchain-id", "other", "lan_ipv4", "10.0.0.1", "", 1)
	f.Fuzz(func(t *testing.T, id, name, tag, mk, mv, tk, addr, host string, port int) {
		s := &consulapi.AgentService{
			ID: id, Service: name, Tags: []string{tag}, Meta: map[string]string{mk: mv},
			TaggedAddresses: map[string]consulapi.ServiceAddress{tk: {Address: addr, Port: port}},
			Address:         host, Port: port,
		}
		in, err := decode(s, host)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("decode error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "decode", err.Error())
			return
		}
		if err := registry.Validate(in); err != nil {
			t.Fatalf("decode returned an invalid instance: %v", err)
		}
	})
}

func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("k", "v", "k2", "v2", "grpc://h:1", "grpc://h:2")
	f.Add("a.b", strings.Repeat("x", 600), "regchain-md-0", "", "http://[::1]:80/p?q", "HTTP://h")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, ep1, ep2 string) {
		in := &registry.Instance{ID: "i", Name: "s", Version: "v", Metadata: map[string]string{k1: v1, k2: v2}, Endpoints: []string{ep1, ep2}}
		if registry.Validate(in) != nil {
			return
		}
		asr, err := encode(in, qualifiedID(in.Name, in.ID))
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("encode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := consulAccepts(asr.Meta); err != nil {
			t.Fatalf("Consul would refuse the meta: %v", err)
		}
		got, err := decode(asService(asr), "")
		if err != nil {
			t.Fatalf("decode(encode): %v", err)
		}
		// Strings go to Consul as JSON: invalid UTF-8 comes back changed.
		for _, s := range []string{k1, v1, k2, v2, ep1, ep2} {
			if !isUTF8(s) {
				return
			}
		}
		if !got.Equal(in) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
		}
	})
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
