package etcd

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/regchain/regchain/registry"
)

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
		if rs.codec == CodecRegchain && isMicroRecord(kv.Value) {
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
