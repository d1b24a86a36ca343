package etcd

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestHistoryObserve(t *testing.T) {
	hdr := func(cluster uint64, rev int64, term uint64) *pb.ResponseHeader {
		return &pb.ResponseHeader{ClusterId: cluster, Revision: rev, RaftTerm: term}
	}
	var h history
	steps := []struct {
		name string
		hdr  *pb.ResponseHeader
		want verdict
	}{
		{"first", hdr(1, 100, 2), same},
		{"forward", hdr(1, 120, 2), same},
		{"no header", nil, same},
		{"older response observed late", hdr(1, 110, 2), suspect},
		{"another while confirming", hdr(1, 5, 2), same},
	}
	for _, s := range steps {
		if v, _ := h.observe(s.hdr); v != s.want {
			t.Fatalf("%s: verdict %v, want %v", s.name, v, s.want)
		}
	}
	// The confirmation read answers at or past what was seen: a false alarm.
	if h.confirmed(hdr(1, 121, 2), 120) {
		t.Fatal("a confirmation at 121 after 120 was seen reported a change")
	}
	// Revisions behind, confirmed: a new history.
	if v, seen := h.observe(hdr(1, 7, 2)); v != suspect || seen != 121 {
		t.Fatalf("behind: verdict %v seen %d, want suspect at 121", v, seen)
	}
	if !h.confirmed(hdr(1, 8, 2), 121) {
		t.Fatal("a confirmation at 8 after 121 was seen did not report a change")
	}
	// The new history is the reference now.
	if v, _ := h.observe(hdr(1, 9, 2)); v != same {
		t.Fatalf("after the change: verdict %v, want same", v)
	}
	// A failed confirmation read forgets the suspicion; the next one asks again.
	if v, _ := h.observe(hdr(1, 3, 2)); v != suspect {
		t.Fatalf("verdict %v, want suspect", v)
	}
	h.confirmed(nil, 0)
	if v, _ := h.observe(hdr(1, 3, 2)); v != suspect {
		t.Fatalf("after a failed confirmation: verdict %v, want suspect", v)
	}
	h.confirmed(hdr(1, 9, 2), 9)
	// A lower raft term is a suspicion too; another cluster is a change at once.
	if v, _ := h.observe(hdr(1, 10, 1)); v != suspect {
		t.Fatalf("lower term: verdict %v, want suspect", v)
	}
	h.confirmed(hdr(1, 10, 2), 9)
	if v, _ := h.observe(hdr(2, 50, 3)); v != changed {
		t.Fatalf("another cluster: verdict %v, want changed", v)
	}
}
