package etcd

import (
	"slices"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

func storeInstance(name, id string) *registry.Instance {
	return &registry.Instance{ID: id, Name: name, Endpoints: []string{"grpc://10.0.0.1:1"}}
}

// ids returns the IDs of a service's current state.
func (s *store) ids(name string) []string {
	var out []string
	for _, in := range s.update(name, time.Time{}).Instances {
		out = append(out, in.ID)
	}
	return out
}

// TestStoreApply: puts and deletes change a held service's state; a delete
// of a key the state lacks changes nothing; update lists the instances
// sorted, at the store's revision.
func TestStoreApply(t *testing.T) {
	s := newStore()
	if !s.apply(event{"/ns/a/2", "a", storeInstance("a", "2")}) || !s.apply(event{"/ns/a/1", "a", storeInstance("a", "1")}) {
		t.Fatal("a put did not change the state")
	}
	s.rev = 7
	u := s.update("a", time.Time{})
	if got := s.ids("a"); !slices.Equal(got, []string{"1", "2"}) || u.Revision != 7 || u.Source != Source {
		t.Fatalf("update = %v at %d from %q; want [1 2] at 7 from %q", got, u.Revision, u.Source, Source)
	}
	if s.apply(event{"/ns/a/3", "a", nil}) {
		t.Error("a delete of a key the state lacks changed it")
	}
	if !s.apply(event{"/ns/a/1", "a", nil}) {
		t.Error("a delete did not change the state")
	}
	s.dropEmpty("a")
	if _, ok := s.state["a"]; !ok {
		t.Error("dropEmpty forgot a service that still has an instance")
	}
	s.apply(event{"/ns/a/2", "a", nil})
	s.dropEmpty("a")
	if _, ok := s.state["a"]; ok {
		t.Error("dropEmpty kept an empty service")
	}
}

// TestStoreHoldsAndAccepts: events apply to held services only, and to a
// service read alone only past its read's revision; a list replaces the
// state, clears what it read from pending and resets the read revisions.
func TestStoreHoldsAndAccepts(t *testing.T) {
	s := newStore()
	s.want("a")
	s.want("b")
	if s.holds("a") || s.accepts("a", 1) {
		t.Fatal("a pending service is held")
	}
	names, resync := s.toFetch()
	slices.Sort(names)
	if resync || !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("toFetch = %v, %v; want [a b], false", names, resync)
	}
	s.setService("a", map[string]*registry.Instance{"/ns/a/1": storeInstance("a", "1")}, 10)
	if !s.holds("a") || s.accepts("a", 10) || !s.accepts("a", 11) {
		t.Errorf("after a read of a alone at 10: holds %v, accepts 10 %v, 11 %v; want true, false, true", s.holds("a"), s.accepts("a", 10), s.accepts("a", 11))
	}
	if _, pending := s.pending["a"]; pending {
		t.Error("a read alone stays pending")
	}
	all, want := s.wanted()
	if all || len(want) != 2 {
		t.Errorf("wanted = %v, %v; want a and b", all, want)
	}
	old := s.replace(map[string]map[string]*registry.Instance{"b": {"/ns/b/1": storeInstance("b", "1")}}, 20, false, want)
	if len(old["a"]) != 1 {
		t.Errorf("replace returned %v as the old state, want a's", old)
	}
	if !s.synced || s.rev != 20 || !s.accepts("a", 11) || len(s.pending) != 0 {
		t.Errorf("after a list at 20: synced %v, rev %d, accepts a@11 %v, pending %v", s.synced, s.rev, s.accepts("a", 11), s.pending)
	}
	if n := s.names(old); len(n) != 2 {
		t.Errorf("names of the state and the old one = %v, want a and b", n)
	}
	if s.holds("c") || s.accepts("c", 30) {
		t.Error("a service nobody watched is held")
	}
}

// TestStoreWatchAll: a watch-all asks for a list instead of reads alone,
// and once listed every service is held and every event applies.
func TestStoreWatchAll(t *testing.T) {
	s := newStore()
	s.want("a")
	s.want("")
	if _, resync := s.toFetch(); !resync {
		t.Fatal("a watch-all did not ask for a list")
	}
	all, want := s.wanted()
	if !all {
		t.Fatal("wanted: not every service with a watch-all")
	}
	s.replace(map[string]map[string]*registry.Instance{}, 5, all, want)
	if !s.holds("") || !s.holds("zzz") || !s.accepts("zzz", 1) || s.wantAll || len(s.pending) != 0 {
		t.Errorf("after a watch-all's list: holds all %v, accepts any %v, wantAll %v, pending %v", s.holds(""), s.accepts("zzz", 1), s.wantAll, s.pending)
	}
	if all, names := s.heldNames(); !all || names != nil {
		t.Errorf("heldNames = %v, %v; want all", all, names)
	}
}

// TestStoreManyPendingAskForAList: more than maxFetch services waiting are
// listed, not read one by one.
func TestStoreManyPendingAskForAList(t *testing.T) {
	s := newStore()
	for i := range maxFetch + 1 {
		s.want(string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	if _, resync := s.toFetch(); !resync {
		t.Errorf("%d pending services: no list asked for", maxFetch+1)
	}
}
