package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// microCodec stands in for microplugin.EtcdCodec (an adapter does not
// import the plugins; that codec is tested in microplugin against this
// adapter): records in the go-micro etcd plugin's shape, a service with
// one node, under MicroNamespace. It keeps only what the layout tests
// need: ID, name, version, one endpoint.
type microCodec struct{}

type microRecord struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Nodes   []struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	} `json:"nodes"`
}

func (microCodec) Namespace() string { return MicroNamespace }

func (microCodec) Encode(in *registry.Instance) ([]byte, error) {
	u, err := url.Parse(in.Endpoints[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", registry.ErrInvalid, err)
	}
	rec := microRecord{Name: in.Name, Version: in.Version}
	rec.Nodes = append(rec.Nodes, struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	}{in.ID, u.Host})
	return json.Marshal(rec)
}

func (microCodec) Decode(value []byte) (*registry.Instance, error) {
	var rec microRecord
	if err := json.Unmarshal(value, &rec); err != nil || rec.Nodes == nil {
		return registry.Unmarshal(value)
	}
	if len(rec.Nodes) != 1 {
		return nil, fmt.Errorf("%w: %d nodes", registry.ErrInvalid, len(rec.Nodes))
	}
	n := rec.Nodes[0]
	return &registry.Instance{ID: n.ID, Name: rec.Name, Version: rec.Version, Endpoints: []string{"grpc://" + n.Address}}, nil
}

// A codec's records round-trip through etcd, under its namespace; the
// instance it decodes must pass registry.Validate and agree with its key,
// and a record over registry.MaxRecordSize never reaches it.
func TestCodec(t *testing.T) {
	srv := shared.Server(t)
	cfg := testConfig(t, srv.Endpoint())
	cfg.Codec, cfg.Namespace = microCodec{}, ""
	r := newRegistry(t, cfg)
	if r.c.ns != MicroNamespace {
		t.Fatalf("namespace %q, want the codec's %q", r.c.ns, MicroNamespace)
	}
	in := &registry.Instance{ID: "c1", Name: "codec-svc", Version: "v1", Endpoints: []string{"grpc://10.0.0.1:9000"}}
	if err := r.Register(ctxT(t, 5*time.Second), in); err != nil {
		t.Fatal(err)
	}
	cli := newClient(t, srv.Endpoint())
	resp, err := cli.Get(ctxT(t, 5*time.Second), MicroNamespace+"/codec-svc/c1")
	if err != nil || len(resp.Kvs) != 1 || !isMicroRecord(resp.Kvs[0].Value) {
		t.Fatalf("stored record: %v, %v", resp, err)
	}
	if got, err := r.GetService(ctxT(t, 5*time.Second), "codec-svc"); err != nil || len(got) != 1 || !got[0].Equal(in) {
		t.Fatalf("GetService = %v, %v; want %v", got, err, in)
	}

	var rec *logRecorder
	cfg = testConfig(t, srv.Endpoint())
	cfg.Codec, cfg.Logger = badCodec{}, testLogger(t, &rec)
	b := newRegistry(t, cfg)
	for key, value := range map[string]string{
		"/bad/1": `{"nodes":[]}`,                                           // decoded as an invalid instance
		"/bad/2": `nil`,                                                    // decoded as no instance
		"/bad/3": `{"id":"other","name":"bad","endpoints":["grpc://h:1"]}`, // disagrees with its key
		"/bad/4": string(make([]byte, registry.MaxRecordSize+1)),           // too big for any codec
	} {
		if _, err := cli.Put(ctxT(t, 5*time.Second), cfg.Namespace+key, value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.GetService(ctxT(t, 5*time.Second), "bad"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetService of bad records = %v, want ErrNotFound", err)
	}
	if n := rec.count("skipping malformed record"); n != 4 {
		t.Errorf("%d malformed-record warnings, want 4", n)
	}
}

// badCodec decodes what TestCodec stores under /bad into instances the
// adapter must refuse.
type badCodec struct{}

func (badCodec) Namespace() string                            { return "" }
func (badCodec) Encode(in *registry.Instance) ([]byte, error) { return registry.Marshal(in) }
func (badCodec) Decode(value []byte) (*registry.Instance, error) {
	switch string(value) {
	case `{"nodes":[]}`:
		return &registry.Instance{ID: "1", Name: "bad"}, nil // no endpoint
	case `nil`:
		return nil, nil
	}
	if len(value) > registry.MaxRecordSize {
		panic("a record over MaxRecordSize reached the codec")
	}
	return registry.Unmarshal(value)
}
