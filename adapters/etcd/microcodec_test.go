package etcd

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// The whole conformance kit holds with the go-micro layout.
func TestConformanceMicroCodec(t *testing.T) {
	srv := shared.Server(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		cfg := testConfig(t, srv.Endpoint())
		cfg.Codec = CodecMicro
		r, err := New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return r
	})
}

// A record the go-micro etcd plugin v1.2.0 writes (json.Marshal of its
// registry.Service with the one node), byte for byte.
const pluginRecord = `{"name":"greeter","version":"latest","metadata":{"team":"a"},"endpoints":[{"name":"Greeter.Hello","request":{"name":"Request","type":"Request","values":null},"response":{"name":"Response","type":"Response","values":null},"metadata":{"stream":"false"}}],"nodes":[{"id":"greeter-1","address":"10.0.0.1:8080","metadata":{"broker":"http","protocol":"mucp","registry":"etcd","server":"mucp","transport":"http"}}]}`

func TestMicroCodecPluginRecord(t *testing.T) {
	in, err := unmarshalMicro([]byte(pluginRecord))
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "greeter-1" || in.Name != "greeter" || in.Version != "latest" ||
		len(in.Endpoints) != 1 || in.Endpoints[0] != "http://10.0.0.1:8080" || in.Metadata["protocol"] != "mucp" {
		t.Errorf("decoded %+v", in)
	}
	if got := in.Metadata[microKeyService]; got != `{"team":"a"}` {
		t.Errorf("service metadata %q", got)
	}
	// Encoding it again gives the plugin's bytes back.
	out, err := marshalMicro(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != pluginRecord {
		t.Errorf("re-encoded\n got %s\nwant %s", out, pluginRecord)
	}
}

func TestMicroCodecRoundTrip(t *testing.T) {
	for _, in := range []*registry.Instance{
		{ID: "k1", Name: "kratos", Version: "v1", Metadata: map[string]string{"weight": "3"},
			Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000"}},
		{ID: "m1", Name: "micro", Endpoints: []string{"micro://10.0.0.2:1"}},
		{ID: "g1", Name: "grpc", Metadata: map[string]string{"transport": "grpc"}, Endpoints: []string{"grpc://[::1]:9000"}},
	} {
		data, err := marshalMicro(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var svc microService
		if err := json.Unmarshal(data, &svc); err != nil || len(svc.Nodes) != 1 || svc.Nodes[0].Address == "" {
			t.Errorf("%s: not a go-micro service with one addressed node: %s", in, data)
		}
		back, err := unmarshalMicro(data)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !back.Equal(in) {
			t.Errorf("round trip: got %+v, want %+v (record %s)", back, in, data)
		}
	}
	// A regchain record under the same namespace is read too.
	plain, _ := registry.Marshal(&registry.Instance{ID: "p", Name: "plain", Endpoints: []string{"grpc://h:1"}})
	if in, err := unmarshalMicro(plain); err != nil || in.ID != "p" {
		t.Errorf("regchain record: %+v, %v", in, err)
	}
}

func TestMicroCodecBadRecords(t *testing.T) {
	for _, rec := range []string{
		`not json`,
		`{"name":"a","nodes":[]}`,
		`{"name":"a","nodes":[{"id":"1","address":"h:1"},{"id":"2","address":"h:2"}]}`,
		`{"name":"a","nodes":[null]}`,
		`{"name":"a/b","nodes":[{"id":"1","address":"h:1"}]}`,
		`{"name":"a","nodes":[{"id":"1","address":""}]}`,
		`{"name":"a","nodes":[{"id":"1","address":"h:1","metadata":{"regchain-endpoints":"[1]"}}]}`,
		strings.Repeat(" ", registry.MaxRecordSize+1),
	} {
		if _, err := unmarshalMicro([]byte(rec)); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("unmarshalMicro(%.60q) = %v, want ErrInvalid", rec, err)
		}
	}
}

func FuzzMicroCodec(f *testing.F) {
	f.Add([]byte(pluginRecord))
	f.Add([]byte(`{"name":"a","nodes":[{"id":"1","address":"h:1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := unmarshalMicro(data)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "unmarshalMicro", err.Error())
			return
		}
		out, err := marshalMicro(in)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", in, err)
		}
		back, err := unmarshalMicro(out)
		if err != nil || !back.Equal(in) {
			t.Fatalf("re-decoded %+v, %v; want %+v", back, err, in)
		}
	})
}
