package etcd

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/regchain/regchain/registry"
)

func TestSplitKey(t *testing.T) {
	rs := &records{ns: "/ns"}
	cases := []struct {
		key      string
		name, id string
		ok       bool
	}{
		{"/ns/svc/id1", "svc", "id1", true},
		{"/ns/svc/a/b", "svc", "a/b", true}, // rejected later: the ID is invalid
		{"/ns/svc", "", "", false},
		{"/ns/svc/", "", "", false},
		{"/ns//id", "", "", false},
		{"/other/svc/id", "", "", false},
		{"/nsx/svc/id", "", "", false},
	}
	for _, c := range cases {
		name, id, ok := rs.splitKey(c.key)
		if name != c.name || id != c.id || ok != c.ok {
			t.Errorf("splitKey(%q) = %q, %q, %v; want %q, %q, %v", c.key, name, id, ok, c.name, c.id, c.ok)
		}
	}
}

// FuzzDecode feeds arbitrary keys and values to the decoder: it must never
// panic, and whatever it accepts must be a valid instance matching its key.
func FuzzDecode(f *testing.F) {
	f.Add("/ns/svc/a", `{"id":"a","name":"svc","version":"v1","metadata":null,"endpoints":["grpc://127.0.0.1:1"]}`)
	f.Add("/ns/svc/a", `{"id":"b","name":"svc","endpoints":["grpc://127.0.0.1:1"]}`)
	f.Add("/ns/svc/a", `{not json`)
	f.Add("/ns/svc", `{}`)
	f.Add("/ns/svc/a", `{"id":"a","name":"svc","endpoints":[],"metadata":{"":""}}`)
	f.Add("/ns/svc/a", `null`)
	f.Add("/ns/svc/a", `[]`)
	rs := newRecords(&conn{ns: "/ns", log: slog.New(slog.DiscardHandler)}, KratosCodec{}, registry.Unmarshal)
	f.Fuzz(func(t *testing.T, key, val string) {
		name, in, ok := rs.decode(&mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), ModRevision: 1})
		if !ok {
			return
		}
		if err := registry.Validate(in); err != nil {
			t.Fatalf("decode accepted an invalid instance %+v: %v", in, err)
		}
		if key != "/ns/"+in.Name+"/"+in.ID || name != in.Name {
			t.Fatalf("decode accepted %s (name %q) under key %q", in.Key(), name, key)
		}
	})
}

// TestMalformedRecords puts records that are not valid instances under the
// namespace: reads and watchers skip them and keep working.
func TestMalformedRecords(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, srv.Endpoint())
	var rec *logRecorder
	cfg.Logger = testLogger(t, &rec)
	r := newRegistry(t, cfg)
	ctx := ctxT(t, time.Minute)
	svc := "bad"
	ns := cfg.Namespace
	bad := map[string]string{
		ns + "/bad/notjson":  `{not json`,
		ns + "/bad/idclash":  `{"id":"other","name":"bad","version":"","metadata":null,"endpoints":["grpc://127.0.0.1:1"]}`,
		ns + "/bad/nameclsh": `{"id":"nameclsh","name":"good","version":"","metadata":null,"endpoints":["grpc://127.0.0.1:1"]}`,
		ns + "/bad/noeps":    `{"id":"noeps","name":"bad","version":"","metadata":null,"endpoints":[]}`,
		ns + "/bad/a/b":      `{"id":"a/b","name":"bad","version":"","metadata":null,"endpoints":["grpc://127.0.0.1:1"]}`,
		ns + "/bad/null":     `null`,
		ns + "/bad/big":      `{"id":"big","name":"bad","version":"` + strings.Repeat("x", registry.MaxRecordSize) + `"}`,
		ns + "/bad":          `{"id":"x","name":"bad","endpoints":["grpc://127.0.0.1:1"]}`,
		ns + "/junk":         `junk`,
	}
	for k, v := range bad {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	a := instance(svc, "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := r.GetService(ctx, svc)
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{a}) {
		t.Errorf("GetService = %v, %v; want [a]", got, err)
	}
	if _, err := r.GetService(ctx, "good"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetService(good) = %v, want ErrNotFound: its only record is under another service's key", err)
	}
	names, err := r.ListServices(ctx)
	if err != nil || !slices.Equal(names, []string{svc}) {
		t.Errorf("ListServices = %v, %v; want [%s]", names, err, svc)
	}
	if n := rec.count("malformed"); n < len(bad)-1 {
		t.Errorf("logged %d malformed records, want at least %d", n, len(bad)-1)
	}
	logged := rec.count("malformed")
	if _, err := r.GetService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if n := rec.count("malformed"); n != logged {
		t.Errorf("reading the same bad records again logged %d more times; want them logged once", n-logged)
	}

	one := watchReader(t, r, svc)
	all := watchReader(t, r, "")
	one.Until(t, 10*time.Second, svc, a)
	all.Until(t, 10*time.Second, svc, a)

	// More bad records while watching, then a good one: not stuck.
	b := instance(svc, "b", 9001)
	if _, err := cli.Put(ctx, ns+"/bad/late", `{"id":`); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, r.rec.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
		t.Fatal(err)
	}
	one.Until(t, 10*time.Second, svc, a, b)
	all.Until(t, 10*time.Second, svc, a, b)
	// A valid record overwritten with garbage no longer counts.
	if _, err := cli.Put(ctx, r.rec.key(b.Name, b.ID), `garbage`); err != nil {
		t.Fatal(err)
	}
	one.Until(t, 10*time.Second, svc, a)
	all.Until(t, 10*time.Second, svc, a)
}
