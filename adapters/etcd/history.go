package etcd

import (
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

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
