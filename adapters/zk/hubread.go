package zk

import (
	"errors"
	"fmt"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/registry"
)

// listServices reads the children of every service in needList (setting a
// children watch, or an exists watch where the service node is missing),
// with up to parallelism requests in flight. New children are queued for
// reading, vanished ones dropped.
func (h *watchHub) listServices(hs *hubState) []error {
	r, cs := h.r, hs.cs
	type list struct {
		s      *svcState
		ids    []string
		st     *gozk.Stat
		ch     <-chan gozk.Event
		exists bool // after ErrNoNode: the node exists again (list again)
		err    error
	}
	var svcs []*svcState // read-only for the call: f's results are not ours if it fails
	for n := range hs.needList {
		s := hs.svcs[n]
		if s == nil || !s.interesting(hs) {
			delete(hs.needList, n)
			continue
		}
		svcs = append(svcs, s)
	}
	if len(svcs) == 0 {
		return nil
	}
	lists := make([]list, len(svcs))
	for i, s := range svcs {
		lists[i].s = s
	}
	r.watching()
	err := h.call(func() error {
		parallel(len(lists), func(i int) {
			l := &lists[i]
			path := r.root.servicePath(l.s.name)
			l.ids, l.st, l.ch, l.err = cs.conn.ChildrenW(path)
			if errors.Is(l.err, gozk.ErrNoNode) {
				l.exists, _, l.ch, l.err = cs.conn.ExistsW(path)
			}
		})
		return nil
	})
	if err != nil {
		for _, s := range svcs {
			h.fail(hs, s, err)
		}
		return []error{err}
	}
	var errs []error
	for _, l := range lists {
		s := l.s
		switch {
		case l.err != nil:
			h.fail(hs, s, l.err)
			errs = append(errs, fmt.Errorf("service %s: %w", registry.Quote(s.name), l.err))
			continue
		case l.st == nil && l.exists: // created between the two reads: list again
			h.forward(cs, l.ch)
			continue
		}
		h.forward(cs, l.ch)
		delete(hs.needList, s.name)
		s.listed, s.failed = true, false
		hs.dirty[s.name] = struct{}{}
		if l.st == nil { // no service node: an exists watch is set
			clear(s.kids)
			delete(hs.needRead, s.name)
			continue
		}
		// A Pzxid that went backwards: the server's history is older than
		// what was read (restored from a backup): read every child again.
		back := l.st.Pzxid < s.pzxid
		if back {
			r.log.Warn("zookeeper: service node older than last seen (history changed); reading its instances again",
				"service", s.name, "pzxid", fmt.Sprintf("%#x", l.st.Pzxid), "seen", fmt.Sprintf("%#x", s.pzxid))
			s.rev = 0
		}
		s.pzxid = l.st.Pzxid
		s.rev = max(s.rev, l.st.Pzxid)
		ids := make(map[string]struct{}, len(l.ids))
		reads := hs.needRead[s.name]
		for _, id := range l.ids {
			ids[id] = struct{}{}
			if _, ok := s.kids[id]; ok && !back {
				continue
			}
			if reads == nil {
				reads = make(map[string]struct{})
				hs.needRead[s.name] = reads
			}
			reads[id] = struct{}{}
		}
		for id := range s.kids {
			if _, ok := ids[id]; !ok {
				delete(s.kids, id)
				delete(reads, id)
			}
		}
	}
	return errs
}

// readKids reads (and sets a data watch on) every instance node in
// needRead, with up to parallelism requests in flight.
func (h *watchHub) readKids(hs *hubState) []error {
	r, cs := h.r, hs.cs
	type read struct {
		s    *svcState
		id   string
		data []byte
		st   *gozk.Stat
		ch   <-chan gozk.Event
		err  error
	}
	var reads []read
	for n, ids := range hs.needRead {
		s := hs.svcs[n]
		if s == nil || !s.interesting(hs) || len(ids) == 0 {
			delete(hs.needRead, n)
			continue
		}
		for id := range ids {
			reads = append(reads, read{s: s, id: id})
		}
	}
	if len(reads) == 0 {
		return nil
	}
	svcs := make(map[*svcState]struct{}) // read-only for the call (see listServices)
	for _, rd := range reads {
		rd.s.failed = false // set again below if a read fails
		svcs[rd.s] = struct{}{}
	}
	r.watching()
	err := h.call(func() error {
		parallel(len(reads), func(i int) {
			rd := &reads[i]
			rd.data, rd.st, rd.ch, rd.err = cs.conn.GetW(r.root.instancePath(rd.s.name, rd.id))
		})
		return nil
	})
	if err != nil {
		for s := range svcs {
			h.fail(hs, s, err)
		}
		return []error{err}
	}
	var errs []error
	for _, rd := range reads {
		s := rd.s
		switch {
		case errors.Is(rd.err, gozk.ErrNoNode):
			delete(s.kids, rd.id) // the children watch fires too
		case rd.err != nil:
			h.fail(hs, s, rd.err)
			errs = append(errs, fmt.Errorf("service %s: %w", registry.Quote(s.name), rd.err))
			continue
		default:
			h.forward(cs, rd.ch)
			s.kids[rd.id] = r.decode(s.name, rd.id, rd.data)
			s.rev = max(s.rev, rd.st.Mzxid)
		}
		delete(hs.needRead[s.name], rd.id)
		hs.dirty[s.name] = struct{}{}
	}
	for n, ids := range hs.needRead {
		if len(ids) == 0 {
			delete(hs.needRead, n)
		}
	}
	return errs
}
