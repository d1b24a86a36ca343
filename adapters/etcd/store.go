package etcd

import (
	"maps"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

// maxFetch is how many services the watch reads one by one (a new
// watcher's service, or the services held when the connection came back);
// with more it lists the namespace instead.
const maxFetch = 64

// store is the watch's copy of the part of the namespace its watchers need:
// per held service, key -> instance, and the revision it reflects. It does
// no I/O and has no lock of its own: hub.mu guards it. Instances are never
// modified once stored, so the Updates made from it share them.
//
// The services it holds are those watched since the watch started (every
// service once a watch-all came); pending and wantAll are the watchers'
// services it does not hold yet. held, allHeld and since are written by the
// follower's goroutine only (under hub.mu), which may read them without it.
type store struct {
	state   map[string]map[string]*registry.Instance // service -> key -> instance
	rev     int64                                    // the revision of state
	synced  bool                                     // state is a complete list
	held    map[string]struct{}                      // the services state holds
	allHeld bool                                     // state holds every service
	since   map[string]int64                         // a service read alone: its read's revision
	pending map[string]struct{}                      // watched, not held yet
	wantAll bool                                     // a watch-all waits: hold every service
}

// event is a decoded change of one key: in is nil when the key no longer
// holds a valid instance (deleted, or overwritten with a malformed record).
type event struct {
	key  string
	name string
	in   *registry.Instance
}

func newStore() store {
	return store{
		state:   make(map[string]map[string]*registry.Instance),
		held:    make(map[string]struct{}),
		since:   make(map[string]int64),
		pending: make(map[string]struct{}),
	}
}

// holds reports whether the state holds service name ("": every service).
func (s *store) holds(name string) bool {
	if s.allHeld {
		return true
	}
	if name == "" {
		return false
	}
	_, ok := s.held[name]
	return ok
}

// want notes a watcher of name ("": every service) whose state is not held.
func (s *store) want(name string) {
	if name == "" {
		s.wantAll = true
	} else {
		s.pending[name] = struct{}{}
	}
}

// accepts reports whether an event of service name at revision modRev is
// to be applied: the service is held, and the event is not covered by a
// read of the service alone (since).
func (s *store) accepts(name string, modRev int64) bool {
	if s.allHeld {
		return true
	}
	if _, held := s.held[name]; !held {
		return false
	}
	return modRev > s.since[name]
}

// apply applies one event; it reports whether the service's state changed.
func (s *store) apply(ev event) bool {
	m := s.state[ev.name]
	if ev.in == nil {
		if _, ok := m[ev.key]; !ok {
			return false
		}
		delete(m, ev.key)
		return true
	}
	if m == nil {
		m = make(map[string]*registry.Instance)
		s.state[ev.name] = m
	}
	m[ev.key] = ev.in
	return true
}

// dropEmpty forgets service name if it has no instance left (it was
// published empty).
func (s *store) dropEmpty(name string) {
	if len(s.state[name]) == 0 {
		delete(s.state, name)
	}
}

// wanted returns what a list must read: every service (all), or the
// services held and pending now.
func (s *store) wanted() (all bool, want map[string]struct{}) {
	want = make(map[string]struct{}, len(s.held)+len(s.pending))
	for name := range s.held {
		want[name] = struct{}{}
	}
	for name := range s.pending {
		want[name] = struct{}{}
	}
	return s.allHeld || s.wantAll, want
}

// replace makes the state a list's: state at rev, holding want (every
// service if all). It returns the previous state.
func (s *store) replace(state map[string]map[string]*registry.Instance, rev int64, all bool, want map[string]struct{}) (old map[string]map[string]*registry.Instance) {
	old = s.state
	s.state, s.rev, s.synced = state, rev, true
	s.held, s.allHeld, s.since = want, all, make(map[string]int64)
	if all {
		s.wantAll = false
		clear(s.pending) // every service is held now
	}
	for name := range want {
		delete(s.pending, name)
	}
	return old
}

// setService makes the state hold service name as read alone at revision
// rev: exactly the instances of m. Its events up to rev are skipped from
// now on (accepts): those already received were committed before the
// read, and rev covers them.
func (s *store) setService(name string, m map[string]*registry.Instance, rev int64) {
	delete(s.pending, name)
	s.held[name] = struct{}{}
	s.since[name] = rev
	if len(m) > 0 {
		s.state[name] = m
	} else {
		delete(s.state, name)
	}
}

// toFetch returns the pending services to read one by one, forgetting those
// held meanwhile; resync says a list is due instead (a watch-all waits, or
// more than maxFetch are pending).
func (s *store) toFetch() (names []string, resync bool) {
	if s.wantAll || len(s.pending) > maxFetch {
		return nil, true
	}
	for name := range s.pending {
		if s.holds(name) {
			delete(s.pending, name) // a list has read it meanwhile
			continue
		}
		names = append(names, name)
	}
	return names, false
}

// heldNames returns the services held, or all=true when every one is.
func (s *store) heldNames() (all bool, names []string) {
	if s.allHeld {
		return true, nil
	}
	return false, slices.Collect(maps.Keys(s.held))
}

// names returns the services of the state and of old.
func (s *store) names(old map[string]map[string]*registry.Instance) map[string]struct{} {
	names := make(map[string]struct{}, len(s.state)+len(old))
	for name := range s.state {
		names[name] = struct{}{}
	}
	for name := range old {
		names[name] = struct{}{}
	}
	return names
}

// update returns the current Update of a service, its Instances sorted.
func (s *store) update(name string, now time.Time) *registry.Update {
	list := slices.Collect(maps.Values(s.state[name]))
	registry.SortInstances(list)
	return &registry.Update{Service: name, Instances: list, Source: Source, Revision: s.rev, Time: now}
}
