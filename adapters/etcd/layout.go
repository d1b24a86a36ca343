package etcd

import (
	"encoding/json"
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

// microHere handles a go-micro record found by a KratosCodec registry:
// one warning per registry, DEBUG after.
func (r *Registry) microHere(key string) {
	if r.hints.warnedHere.CompareAndSwap(false, true) {
		r.log.Warn("etcd: the namespace holds records in the go-micro etcd plugin's layout, which this registry skips: set Config.Codec to microplugin.EtcdCodec{} to read them (it reads both layouts)",
			"namespace", r.ns, "key", key)
		return
	}
	r.log.Debug("etcd: skipping a go-micro record (Codec is KratosCodec)", "key", key)
}

// otherNamespace returns the default namespace of the other layout, or ""
// when it is this registry's own.
func (r *Registry) otherNamespace() string {
	other := MicroNamespace
	if r.readsMicro() {
		other = DefaultNamespace
	}
	if other == r.ns {
		return ""
	}
	return other
}

// absent is called when a read found a service absent: at most once per
// lookEvery, and until a look has found something, it looks in the
// background whether the other layout's namespace holds records.
func (r *Registry) absent() {
	other := r.otherNamespace()
	if other == "" || r.hints.warnedOther.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := r.hints.lastLook.Load()
	if last != 0 && now-last < lookEvery.Nanoseconds() {
		return
	}
	if !r.hints.lastLook.CompareAndSwap(last, now) {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		r.lookOther(other)
	}()
}

func (r *Registry) lookOther(other string) {
	ctx, cancel := r.opCtx(r.ctx)
	defer cancel()
	resp, err := r.client.Get(ctx, other+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return // nothing there (or etcd is away): look again later
	}
	if !r.hints.warnedOther.CompareAndSwap(false, true) {
		return
	}
	if r.readsMicro() {
		r.log.Warn("etcd: nothing found under this namespace, but "+other+" holds records, Kratos' and regchain's namespace: to read them, use the default Codec (KratosCodec), or this Codec with Namespace "+other,
			"namespace", r.ns, "other", other, "key", string(resp.Kvs[0].Key))
		return
	}
	r.log.Warn("etcd: nothing found under this namespace, but "+other+" holds records, the go-micro etcd plugin's namespace: to read a go-micro fleet, set Config.Codec to microplugin.EtcdCodec{} (or use microplugin/etcdchain.NewRegistry)",
		"namespace", r.ns, "other", other, "key", string(resp.Kvs[0].Key))
}
