package etcd

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// lookEvery is how often, at most, a read that finds nothing makes the
// registry look under the other layout's namespace.
const lookEvery = time.Minute

// layoutHints holds the state of the warnings of the package doc's "Two
// layouts". All fields are used atomically.
type layoutHints struct {
	warnedHere  atomic.Bool  // go-micro records found under the namespace
	warnedOther atomic.Bool  // records found under the other layout's namespace
	lastLook    atomic.Int64 // UnixNano of the last look there
}

// isMicroRecord reports whether a record that failed to decode as
// regchain's JSON is a go-micro etcd plugin record: an object with a
// "nodes" array.
func isMicroRecord(data []byte) bool {
	var probe struct {
		Nodes []json.RawMessage `json:"nodes"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Nodes != nil
}

// microHere handles a go-micro record found under namespace ns by a
// KratosCodec registry: one warning per registry, DEBUG after.
func (h *layoutHints) microHere(log *slog.Logger, ns, key string) {
	if h.warnedHere.CompareAndSwap(false, true) {
		log.Warn("etcd: the namespace holds records in the go-micro etcd plugin's layout, which this registry skips: set Config.Codec to microplugin.EtcdCodec{} to read them (it reads both layouts)",
			"namespace", ns, "key", key)
		return
	}
	log.Debug("etcd: skipping a go-micro record (Codec is KratosCodec)", "key", key)
}

// otherNamespace returns the default namespace of the other layout than
// codec's, or "" when it is ns itself.
func otherNamespace(codec Codec, ns string) string {
	other := MicroNamespace
	if readsMicro(codec) {
		other = DefaultNamespace
	}
	if other == ns {
		return ""
	}
	return other
}

// due reports whether a read that found a service absent should look under
// the other namespace now: not once a look found something, and at most
// once per lookEvery.
func (h *layoutHints) due() bool {
	if h.warnedOther.Load() {
		return false
	}
	now := time.Now().UnixNano()
	last := h.lastLook.Load()
	if last != 0 && now-last < lookEvery.Nanoseconds() {
		return false
	}
	return h.lastLook.CompareAndSwap(last, now)
}

// look reads at most one key under other (the other layout's namespace)
// and warns, once, when it holds records.
func (h *layoutHints) look(ctx context.Context, client *clientv3.Client, log *slog.Logger, codec Codec, ns, other string) {
	resp, err := client.Get(ctx, other+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return // nothing there (or etcd is away): look again later
	}
	if !h.warnedOther.CompareAndSwap(false, true) {
		return
	}
	if readsMicro(codec) {
		log.Warn("etcd: nothing found under this namespace, but "+other+" holds records, Kratos' and regchain's namespace: to read them, use the default Codec (KratosCodec), or this Codec with Namespace "+other,
			"namespace", ns, "other", other, "key", string(resp.Kvs[0].Key))
		return
	}
	log.Warn("etcd: nothing found under this namespace, but "+other+" holds records, the go-micro etcd plugin's namespace: to read a go-micro fleet, set Config.Codec to microplugin.EtcdCodec{} (or use microplugin/etcdchain.NewRegistry)",
		"namespace", ns, "other", other, "key", string(resp.Kvs[0].Key))
}
