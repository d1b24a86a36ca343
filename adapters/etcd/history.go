package etcd

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errHistoryChanged is the state of registrations being checked after etcd
// came back with another history.
var errHistoryChanged = errors.New("etcd came back with another history (wiped or restored from a snapshot); checking the record")

// history follows the identity of the history etcd serves, from the headers
// of linearizable responses (reads, writes, lease grants). Within one
// history the cluster ID never changes, and a linearizable read started
// after a response at revision R answers at R or later. A response below
// the highest revision seen (or with a lower raft term) is only a suspicion,
// since concurrent responses may be observed out of order; it is confirmed
// by a fresh linearizable read: if that read, started after revision R was
// seen, answers below R, etcd was wiped, rebuilt or restored from a
// snapshot. A changed cluster ID is a change at once.
type history struct {
	mu         sync.Mutex // guards the fields below
	cluster    uint64
	rev        int64
	term       uint64
	confirming bool // a confirmation read is running
}

// verdict is what observe makes of a header.
type verdict int

const (
	same verdict = iota
	suspect
	changed
)

// observe records hdr and judges it.
func (h *history) observe(hdr *pb.ResponseHeader) (v verdict, seen int64) {
	if hdr == nil || hdr.Revision == 0 {
		return same, 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen = h.rev
	switch {
	case h.rev == 0:
	case hdr.ClusterId != h.cluster:
		v = changed
		h.rev, h.term = 0, 0
	case hdr.Revision < h.rev || hdr.RaftTerm < h.term:
		if h.confirming {
			return same, seen
		}
		h.confirming = true
		return suspect, seen
	}
	h.cluster = hdr.ClusterId
	h.rev = max(h.rev, hdr.Revision)
	h.term = max(h.term, hdr.RaftTerm)
	return v, seen
}

// confirmed records the answer of a confirmation read started after seen
// was the highest revision; it reports whether the history changed.
func (h *history) confirmed(hdr *pb.ResponseHeader, seen int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.confirming = false
	if hdr == nil {
		return false // the read failed: a later response suspects again
	}
	if hdr.Revision < seen || hdr.ClusterId != h.cluster {
		h.cluster, h.rev, h.term = hdr.ClusterId, hdr.Revision, hdr.RaftTerm
		return true
	}
	h.rev = max(h.rev, hdr.Revision)
	h.term = max(h.term, hdr.RaftTerm)
	return false
}

// answered notes that etcd just answered one of the registry's requests
// (see Config.PassivePing).
func (r *Registry) answered() { r.lastAnswer.Store(time.Now().UnixNano()) }

// observe feeds a linearizable response's header to the history; on a
// change it tells every keeper and the watch hub. It returns its verdict.
func (r *Registry) observe(hdr *pb.ResponseHeader) verdict {
	if hdr != nil {
		r.answered()
	}
	v, seen := r.hist.observe(hdr)
	switch v {
	case changed:
		r.changedHistory(seen, hdr)
	case suspect:
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			r.hist.confirmed(nil, 0)
			return v
		}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.confirm(seen)
	}
	return v
}

// confirm runs the confirmation read of a suspected history change.
func (r *Registry) confirm(seen int64) {
	defer r.wg.Done()
	ctx, cancel := r.opCtx(r.ctx)
	defer cancel()
	resp, err := r.client.Get(ctx, r.ns, clientv3.WithCountOnly())
	if err != nil {
		r.hist.confirmed(nil, 0)
		return
	}
	if r.hist.confirmed(resp.Header, seen) {
		r.changedHistory(seen, resp.Header)
	}
}

func (r *Registry) changedHistory(seen int64, hdr *pb.ResponseHeader) {
	r.log.Warn("etcd: etcd came back with another history (wiped, rebuilt or restored from a snapshot); checking every registration and listing every watch again",
		"seenRevision", seen, "revision", hdr.Revision, "cluster", hdr.ClusterId)
	r.historyChanged.Fire()
}

// probe is Ping's request: a linearizable read of one fixed key that never
// holds an instance (the namespace itself). etcd serves it with a ReadIndex
// round (the leader confirms its leadership with a quorum of heartbeats)
// and a point lookup in its key index, so its cost does not grow with the
// number of keys; it succeeds only while there is a leader and a quorum.
func (r *Registry) probe(ctx context.Context) error {
	resp, err := r.client.Get(ctx, r.ns, clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	r.observe(resp.Header)
	return nil
}
