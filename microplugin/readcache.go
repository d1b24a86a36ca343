package microplugin

import (
	"slices"
	"sync"

	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// readCache keeps, per service name, the go-micro services converted from
// the last state a SharedReader backend returned, so that a read converts
// once per state change and then only copies (see copyServices).
//
// A state is recognised by identity: a SharedReader's Instances never
// change once returned, so the same Instance pointers in the same order are
// the same state. When the pointers differ, equal content (in the same
// order) still reuses the conversion, so that a state republished with new
// Instances is not converted again. An entry lives
// until its service is read as not found; entries are as many as the
// service names read, as in the chain itself.
//
// readCache is safe for concurrent use.
type readCache struct {
	mu sync.RWMutex // guards m
	m  map[string]*converted
}

// converted is one state's conversion. Nothing in it changes once stored.
type converted struct {
	from     []*registry.Instance // the state it was built from (its identity)
	svcs     []*mreg.Service      // the templates copyServices copies
	nodes    int                  // nodes over svcs
	eps      int                  // endpoint descriptors over svcs
	problems []error              // what the conversion left out, logged once
}

// get returns the conversion of ins if it is cached. A state with new
// Instances but the same content as the cached one (the chain publishes
// the same state again when its watch confirms what a first read loaded)
// takes over the cached conversion.
func (c *readCache) get(name string, ins []*registry.Instance) *converted {
	c.mu.RLock()
	cv := c.m[name]
	c.mu.RUnlock()
	switch {
	case cv == nil:
		return nil
	case sameState(cv.from, ins):
		return cv
	case sameContent(cv.from, ins):
		again := *cv
		again.from = ins
		c.put(name, &again)
		return &again
	}
	return nil
}

func (c *readCache) put(name string, cv *converted) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]*converted)
	}
	c.m[name] = cv
	c.mu.Unlock()
}

func (c *readCache) drop(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// sameContent reports whether a and b hold equal Instances in the same
// order, endpoints in the same order too.
func sameContent(a, b []*registry.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) || (a[i] != nil && !slices.Equal(a[i].Endpoints, b[i].Endpoints)) {
			return false
		}
	}
	return true
}

// sameState reports whether a and b hold the same Instances in the same
// order.
func sameState(a, b []*registry.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// convert maps a state (see fromInstances) and counts what copyServices
// will allocate.
func convert(ins []*registry.Instance) *converted {
	svcs, problems := fromInstances(ins, false)
	cv := &converted{from: ins, svcs: svcs, problems: problems}
	for _, s := range svcs {
		cv.nodes += len(s.Nodes)
		cv.eps += len(s.Endpoints)
	}
	return cv
}

// one holds the Service of a single-version read and its slice, in one
// allocation.
type one struct {
	ptr [1]*mreg.Service
	svc [1]mreg.Service
}

// copyServices returns a copy of cv's services with the copy semantics of
// go-micro's registry/cache (util.Copy): the Services, Nodes and Endpoints
// are new structs in new slices, the caller's to modify, re-slice or append
// to; the Metadata maps and endpoint Values they point to are shared with
// every other read of the same state and must not be modified.
//
// Whatever the number of nodes it allocates two arrays for the nodes, two
// for the endpoint descriptors if there are any, and one for the services
// (two for more than one service): each kind of struct
// goes into one array and each slice is a capacity-limited window of one
// pointer array, so an append reallocates instead of reaching a
// neighbour's window.
func copyServices(cv *converted) []*mreg.Service {
	var out []*mreg.Service
	var block []mreg.Service
	if len(cv.svcs) == 1 {
		o := new(one)
		out, block = o.ptr[:], o.svc[:]
	} else {
		out = make([]*mreg.Service, len(cv.svcs))
		block = make([]mreg.Service, len(cv.svcs))
	}
	nodePtrs := make([]*mreg.Node, cv.nodes)
	nodes := make([]mreg.Node, cv.nodes)
	var epPtrs []*mreg.Endpoint
	var eps []mreg.Endpoint
	if cv.eps > 0 {
		epPtrs = make([]*mreg.Endpoint, cv.eps)
		eps = make([]mreg.Endpoint, cv.eps)
	}
	for i, src := range cv.svcs {
		s := &block[i]
		*s = *src
		if src.Nodes != nil {
			n := len(src.Nodes)
			s.Nodes = nodePtrs[:n:n]
			for j, node := range src.Nodes {
				nodes[j] = *node
				s.Nodes[j] = &nodes[j]
			}
			nodePtrs, nodes = nodePtrs[n:], nodes[n:]
		}
		if len(src.Endpoints) > 0 {
			n := len(src.Endpoints)
			s.Endpoints = epPtrs[:n:n]
			for j, ep := range src.Endpoints {
				eps[j] = *ep
				s.Endpoints[j] = &eps[j]
			}
			epPtrs, eps = epPtrs[n:], eps[n:]
		}
		out[i] = s
	}
	return out
}
