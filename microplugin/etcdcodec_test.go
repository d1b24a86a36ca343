package microplugin

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

var codec etcd.Codec = EtcdCodec{}

// The whole conformance kit holds over etcd with the go-micro layout.
func TestConformanceEtcdCodec(t *testing.T) {
	if EtcdNamespace != etcd.MicroNamespace {
		t.Errorf("EtcdNamespace %q, the etcd adapter looks under %q", EtcdNamespace, etcd.MicroNamespace)
	}
	srv := etcdtest.Start(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, err := etcd.New(etcd.Config{
			Endpoints: []string{srv.Endpoint()}, Codec: EtcdCodec{},
			Namespace: EtcdNamespace + "/" + strings.ReplaceAll(t.Name(), "/", "."),
			TTL:       2 * time.Second, Timeout: time.Second, MaxBackoff: 500 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return r
	})
}

// A record the go-micro etcd plugin v1.2.0 writes (json.Marshal of its
// registry.Service with the one node), byte for byte.
const pluginRecord = `{"name":"greeter","version":"latest","metadata":{"team":"a"},"endpoints":[{"name":"Greeter.Hello","request":{"name":"Request","type":"Request","values":null},"response":{"name":"Response","type":"Response","values":null},"metadata":{"stream":"false"}}],"nodes":[{"id":"greeter-1","address":"10.0.0.1:8080","metadata":{"broker":"http","protocol":"mucp","registry":"etcd","server":"mucp","transport":"http"}}]}`

func TestEtcdCodecPluginRecord(t *testing.T) {
	in, err := codec.Decode([]byte(pluginRecord))
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "greeter-1" || in.Name != "greeter" || in.Version != "latest" ||
		len(in.Endpoints) != 1 || in.Endpoints[0] != "http://10.0.0.1:8080" || in.Metadata["protocol"] != "mucp" {
		t.Errorf("decoded %+v", in)
	}
	if got := in.Metadata[MetadataKeyService]; got != `{"team":"a"}` {
		t.Errorf("service metadata %q", got)
	}
	// Encoding it again gives the plugin's bytes back.
	out, err := codec.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != pluginRecord {
		t.Errorf("re-encoded\n got %s\nwant %s", out, pluginRecord)
	}
}

func TestEtcdCodecRoundTrip(t *testing.T) {
	for _, in := range []*registry.Instance{
		{ID: "k1", Name: "kratos", Version: "v1", Metadata: map[string]string{"weight": "3"},
			Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000"}},
		{ID: "m1", Name: "micro", Endpoints: []string{"micro://10.0.0.2:1"}},
		{ID: "g1", Name: "grpc", Metadata: map[string]string{"transport": "grpc"}, Endpoints: []string{"grpc://[::1]:9000"}},
	} {
		data, err := codec.Encode(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var svc microService
		if err := json.Unmarshal(data, &svc); err != nil || len(svc.Nodes) != 1 || svc.Nodes[0].Address == "" {
			t.Errorf("%s: not a go-micro service with one addressed node: %s", in, data)
		}
		back, err := codec.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !back.Equal(in) {
			t.Errorf("round trip: got %+v, want %+v (record %s)", back, in, data)
		}
	}
	// A regchain record under the same namespace is read too.
	plain, _ := registry.Marshal(&registry.Instance{ID: "p", Name: "plain", Endpoints: []string{"grpc://h:1"}})
	if in, err := codec.Decode(plain); err != nil || in.ID != "p" {
		t.Errorf("regchain record: %+v, %v", in, err)
	}
}

func TestEtcdCodecBadRecords(t *testing.T) {
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
		if _, err := codec.Decode([]byte(rec)); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Decode(%.60q) = %v, want ErrInvalid", rec, err)
		}
	}
}

func FuzzEtcdCodec(f *testing.F) {
	f.Add([]byte(pluginRecord))
	f.Add([]byte(`{"name":"a","nodes":[{"id":"1","address":"h:1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := codec.Decode(data)
		if err != nil {
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			testutil.SafeMessage(t, "Decode", err.Error())
			return
		}
		out, err := codec.Encode(in)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", in, err)
		}
		back, err := codec.Decode(out)
		if err != nil || !back.Equal(in) {
			t.Fatalf("re-decoded %+v, %v; want %+v", back, err, in)
		}
	})
}
