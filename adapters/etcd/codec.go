package etcd

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/regchain/regchain/registry"
)

// Codec is the record layout: how an Instance is stored in etcd and read
// back. Every layout keeps one record per instance under the key
// <Namespace>/<name>/<id> (reads are prefix ranges of a service's keys);
// the Codec names its default Namespace and makes the value.
//
// The default, KratosCodec, is the layout of Kratos' contrib etcd
// registry. The go-micro etcd plugin's layout is package microplugin's
// EtcdCodec, so that go-micro's mapping lives in one place:
//
//	etcd.New(etcd.Config{Endpoints: eps, Codec: microplugin.EtcdCodec{}}) // under /micro/registry
//
// A Codec's methods are called concurrently. Codec values should be
// comparable (microplugin/etcdchain compares them between Inits).
type Codec interface {
	// Namespace returns the layout's key prefix, the registry's when
	// Config.Namespace is empty.
	Namespace() string
	// Encode returns the value stored for in, which passed
	// registry.Validate; an error wrapping registry.ErrInvalid refuses the
	// instance (nothing is written).
	Encode(in *registry.Instance) ([]byte, error)
	// Decode returns the Instance a stored value holds, or an error
	// wrapping registry.ErrInvalid for a value it cannot read (the record
	// is skipped and logged). value comes from etcd, written by any
	// client: Decode bounds what it reads, and its error holds no raw
	// bytes of it.
	Decode(value []byte) (*registry.Instance, error)
}

// KratosCodec is the default Codec: each instance stored as its JSON
// (registry.Marshal), the layout of Kratos' contrib etcd registry, under
// DefaultNamespace.
type KratosCodec struct{}

// Namespace implements Codec: DefaultNamespace.
func (KratosCodec) Namespace() string { return DefaultNamespace }

// Encode implements Codec.
func (KratosCodec) Encode(in *registry.Instance) ([]byte, error) { return registry.Marshal(in) }

// Decode implements Codec.
func (KratosCodec) Decode(value []byte) (*registry.Instance, error) { return registry.Unmarshal(value) }

// MicroNamespace is the go-micro etcd plugin's key prefix (microplugin's
// EtcdNamespace): the registry looks there when a read finds nothing (see
// the package doc, "Two layouts").
const MicroNamespace = "/micro/registry"

// marshal encodes in with the registry's codec.
func (r *Registry) marshal(in *registry.Instance) ([]byte, error) {
	if !readsMicro(r.codec) {
		return registry.Marshal(in)
	}
	if err := registry.Validate(in); err != nil {
		return nil, err
	}
	return r.codec.Encode(in)
}

// unmarshal decodes a record with the registry's codec: a record over
// registry.MaxRecordSize is refused before the codec sees it, and what a
// codec other than the default (which validates) returns is validated.
func (r *Registry) unmarshal(data []byte) (*registry.Instance, error) {
	if !readsMicro(r.codec) {
		return registry.Unmarshal(data)
	}
	if len(data) > registry.MaxRecordSize {
		return nil, fmt.Errorf("%w: record is %d bytes, more than %d", registry.ErrInvalid, len(data), registry.MaxRecordSize)
	}
	in, err := r.codec.Decode(data)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, fmt.Errorf("%w: the codec decoded no instance", registry.ErrInvalid)
	}
	if err := registry.Validate(in); err != nil {
		return nil, err
	}
	return in, nil
}

// readsMicro reports whether codec reads the go-micro plugin's records:
// any codec but the default (KratosCodec, or none) is taken to, so that a
// go-micro record it cannot decode is logged as malformed.
func readsMicro(codec Codec) bool { return codec != nil && codec != Codec(KratosCodec{}) }

// records turns the keys and values of the namespace into instances: the
// key layout <namespace>/<name>/<id>, the record codec, and the log of the
// records skipped. It is safe for concurrent use.
type records struct {
	c         *conn
	ns        string
	codec     Codec
	unmarshal func([]byte) (*registry.Instance, error) // the codec's decoder
	hints     layoutHints                              // warnings about the other record layout

	mu  sync.Mutex       // guards bad
	bad map[string]int64 // malformed key -> mod revision already logged
}

func newRecords(c *conn, codec Codec, unmarshal func([]byte) (*registry.Instance, error)) *records {
	return &records{c: c, ns: c.ns, codec: codec, unmarshal: unmarshal, bad: make(map[string]int64)}
}

// key returns the etcd key of an instance: <namespace>/<name>/<id>.
func (rs *records) key(name, id string) string { return rs.ns + "/" + name + "/" + id }

// servicePrefix returns the prefix of a service's keys, ending in "/" so
// that "foo" never matches "foobar".
func (rs *records) servicePrefix(name string) string { return rs.ns + "/" + name + "/" }

// splitKey returns the service name and instance ID encoded in key, or
// ok=false when key is not <namespace>/<name>/<id>.
func (rs *records) splitKey(key string) (name, id string, ok bool) {
	rest, found := strings.CutPrefix(key, rs.ns+"/")
	if !found {
		return "", "", false
	}
	name, id, found = strings.Cut(rest, "/")
	if !found || name == "" || id == "" {
		return "", "", false
	}
	return name, id, true
}

// decode turns a stored record into an Instance. It returns the service
// name from the key (when the key has one) and ok=false, after logging once
// per record version, when the record is malformed or disagrees with its
// key.
func (rs *records) decode(kv *mvccpb.KeyValue) (string, *registry.Instance, bool) {
	key := string(kv.Key)
	name, id, ok := rs.splitKey(key)
	if !ok {
		rs.logBad(key, kv.ModRevision, errors.New("key is not <namespace>/<name>/<id>"))
		return "", nil, false
	}
	in, err := rs.unmarshal(kv.Value)
	if err != nil {
		if !readsMicro(rs.codec) && isMicroRecord(kv.Value) {
			rs.hints.microHere(rs.c.log, rs.ns, key)
		} else {
			rs.logBad(key, kv.ModRevision, err)
		}
		return name, nil, false
	}
	if in.Name != name || in.ID != id {
		rs.logBad(key, kv.ModRevision, fmt.Errorf("record is %s, key says %s", in.Key(), registry.Quote(name+"/"+id)))
		return name, nil, false
	}
	return name, in, true
}

// logBad logs a skipped record once per (key, revision), so a bad record
// read by every GetService is not logged every time.
func (rs *records) logBad(key string, rev int64, err error) {
	rs.mu.Lock()
	if rs.bad[key] == rev {
		rs.mu.Unlock()
		return
	}
	if len(rs.bad) >= 4096 {
		clear(rs.bad)
	}
	rs.bad[key] = rev
	rs.mu.Unlock()
	rs.c.log.Warn("etcd: skipping malformed record", "key", registry.Clip(key), "revision", rev, "error", err)
}

// absent is called when a read found a service absent: at most once per
// lookEvery, and until a look has found something, it looks in the
// background whether the other layout's namespace holds records (see "Two
// layouts" in the package doc).
func (rs *records) absent() {
	other := otherNamespace(rs.codec, rs.ns)
	if other == "" || !rs.hints.due() {
		return
	}
	rs.c.spawn(func() {
		ctx, cancel := rs.c.opCtx(rs.c.ctx)
		defer cancel()
		rs.hints.look(ctx, rs.c.client, rs.c.log, rs.codec, rs.ns, other)
	})
}
