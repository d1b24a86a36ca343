package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	if !slices.Equal(got.Endpoints, []string{"127.0.0.1:2379"}) || got.Namespace != "/microservices" ||
		got.TTL != 15*time.Second || got.Timeout != 5*time.Second || got.DialTimeout != 5*time.Second ||
		got.MaxBackoff != 5*time.Second || got.Logger == nil {
		t.Errorf("Config{}.withDefaults() = %+v", got)
	}
	cases := []struct {
		ns, want string
	}{
		{"/svc/", "/svc"},
		{"/a/b", "/a/b"},
		{"/", "/microservices"},
		{"plain", "plain"},
	}
	for _, c := range cases {
		if got := (Config{Namespace: c.ns}).withDefaults().Namespace; got != c.want {
			t.Errorf("Namespace %q -> %q, want %q", c.ns, got, c.want)
		}
	}
	ttls := []struct {
		in   time.Duration
		want int64
	}{
		{time.Millisecond, 1},
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{15 * time.Second, 15},
	}
	for _, c := range ttls {
		if got := ttlSeconds(c.in); got != c.want {
			t.Errorf("ttlSeconds(%v) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := (Config{Client: &clientv3.Client{}}).withDefaults().Endpoints; got != nil {
		t.Errorf("with a Client, Endpoints default to %v, want none", got)
	}
}

func TestUnavailableClassification(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrTimeout, true},
		{rpctypes.ErrLeaseNotFound, false},
		{rpctypes.ErrPermissionDenied, false},
		{rpctypes.ErrRequestTooLarge, false},
		{rpctypes.ErrCompacted, false},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{status.Error(codes.Unauthenticated, "bad token"), false},
		{fmt.Errorf("put: %w", status.Error(codes.DeadlineExceeded, "slow")), true},
		{errors.New("connection reset by peer"), true},
	}
	for _, c := range cases {
		if got := unavailable(c.err); got != c.want {
			t.Errorf("unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Refusals that no retry changes wrap ErrInvalid (the chain does not
// replay them); a lost lease or a compaction is neither.
func TestRefusedClassification(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrPermissionDenied, true},
		{rpctypes.ErrAuthFailed, true},
		{rpctypes.ErrRequestTooLarge, true},
		{status.Error(codes.Unauthenticated, "bad token"), true},
		{fmt.Errorf("put: %w", rpctypes.ErrGRPCPermissionDenied), true},
		{rpctypes.ErrLeaseNotFound, false},
		{rpctypes.ErrCompacted, false},
		{rpctypes.ErrNoLeader, false},
		{errors.New("connection reset by peer"), false},
	}
	r := &Registry{}
	for _, c := range cases {
		if got := refused(c.err); got != c.want {
			t.Errorf("refused(%v) = %v, want %v", c.err, got, c.want)
		}
		if c.want {
			if err := r.wrapErr(context.Background(), "put", c.err); !errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnavailable) {
				t.Errorf("wrapErr(%v) = %v, want ErrInvalid", c.err, err)
			}
		}
	}
}

func TestSplitKey(t *testing.T) {
	r := &Registry{ns: "/ns"}
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
		name, id, ok := r.splitKey(c.key)
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
	r := &Registry{ns: "/ns", bad: make(map[string]int64), log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, key, val string) {
		name, in, ok := r.decode(&mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), ModRevision: 1})
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
	if _, err := cli.Put(ctx, r.key(b.Name, b.ID), mustMarshal(t, b)); err != nil {
		t.Fatal(err)
	}
	one.Until(t, 10*time.Second, svc, a, b)
	all.Until(t, 10*time.Second, svc, a, b)
	// A valid record overwritten with garbage no longer counts.
	if _, err := cli.Put(ctx, r.key(b.Name, b.ID), `garbage`); err != nil {
		t.Fatal(err)
	}
	one.Until(t, 10*time.Second, svc, a)
	all.Until(t, 10*time.Second, svc, a)
}

// TestUpdateInPlace: registering the same instance with new data keeps the
// lease and replaces the record.
func TestUpdateInPlace(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	r := newRegistry(t, testConfig(t, srv.Endpoint()))
	ctx := ctxT(t, time.Minute)
	a := instance("inplace", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	key := r.key(a.Name, a.ID)
	before, err := cli.Get(ctx, key)
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", before, err)
	}
	a2 := a.Clone()
	a2.Metadata["weight"] = "50"
	if err := r.Register(ctx, a2); err != nil {
		t.Fatal(err)
	}
	after, err := cli.Get(ctx, key)
	if err != nil || len(after.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", after, err)
	}
	if after.Kvs[0].Lease != before.Kvs[0].Lease {
		t.Errorf("lease changed from %x to %x on update", before.Kvs[0].Lease, after.Kvs[0].Lease)
	}
	if got, want := string(after.Kvs[0].Value), mustMarshal(t, a2); got != want {
		t.Errorf("record = %s, want %s", got, want)
	}
	// An identical Register writes nothing.
	if err := r.Register(ctx, a2.Clone()); err != nil {
		t.Fatal(err)
	}
	again, err := cli.Get(ctx, key)
	if err != nil || len(again.Kvs) != 1 || again.Kvs[0].ModRevision != after.Kvs[0].ModRevision {
		t.Errorf("identical Register rewrote the key: %v, %v", again, err)
	}
	regs := r.Registrations()
	if len(regs) != 1 || !regs[0].Live || !regs[0].Instance.Equal(a2) || regs[0].Attempts != 0 || regs[0].LastError != nil {
		t.Errorf("Registrations = %+v, want a2 live", regs)
	}
}

// TestDeregisterRevokes: Deregister deletes the key and revokes the lease.
func TestDeregisterRevokes(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	r := newRegistry(t, testConfig(t, srv.Endpoint()))
	ctx := ctxT(t, time.Minute)
	a := instance("dereg", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, r.key(a.Name, a.ID))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get = %v, %v", resp, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	if err := r.Deregister(ctx, &registry.Instance{Name: a.Name, ID: a.ID}); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctx, r.key(a.Name, a.ID)); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("after Deregister: Get = %v, %v; want no key", resp.Kvs, err)
	}
	if ttl, err := cli.TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Errorf("after Deregister: lease TTL = %v, %v; want -1 (revoked)", ttl, err)
	}
	if regs := r.Registrations(); len(regs) != 0 {
		t.Errorf("Registrations after Deregister = %+v, want none", regs)
	}
}

// TestCloseLeavesLeasesAndClient: Close stops keepalives without revoking
// (records expire with their lease) and leaves a caller's client open.
func TestCloseLeavesLeasesAndClient(t *testing.T) {
	srv := shared.Server(t)
	cli := newClient(t, srv.Endpoint())
	cfg := testConfig(t, "")
	cfg.Endpoints = nil
	cfg.Client = cli
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	a := instance("close", "a", 9000)
	if err := r.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, r.key(a.Name, a.ID))
	if err != nil {
		t.Fatalf("the caller's client no longer works after Close: %v", err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("record gone right after Close: %v", resp.Kvs)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	expired := testutil.WaitFor(t, 20*time.Second, "record expires with its lease", func() string {
		resp, err := cli.Get(ctx, r.key(a.Name, a.ID))
		if err != nil {
			return err.Error()
		}
		if len(resp.Kvs) != 0 {
			return "still there"
		}
		return ""
	})
	if ttl, err := cli.TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Errorf("lease after expiry: %v, %v", ttl, err)
	}
	t.Logf("record expired %v after Close (TTL %v)", expired, cfg.TTL)
}

// TestNewWhileDown: New does not need etcd.
func TestNewWhileDown(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	start := time.Now()
	r := newRegistry(t, cfg)
	if d := time.Since(start); d > time.Second {
		t.Errorf("New took %v with etcd down", d)
	}
	if err := r.Ping(context.Background()); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable (bounded by Config.Timeout)", err)
	}
}
