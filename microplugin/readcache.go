package microplugin

import (
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// converted is one state's conversion, kept per state (registry.Memo) so
// that a read converts once per state change and then only copies (see
// copyServices). Nothing in it changes once stored.
type converted struct {
	svcs     []*mreg.Service // the templates copyServices copies
	nodes    int             // nodes over svcs
	eps      int             // endpoint descriptors over svcs
	problems []error         // what the conversion left out, logged once
}

// convert maps a state (see fromInstances) and counts what copyServices
// will allocate.
func convert(ins []*registry.Instance) *converted {
	svcs, problems := fromInstances(ins, false)
	cv := &converted{svcs: svcs, problems: problems}
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
