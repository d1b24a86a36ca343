package kratosplugin

import (
	"maps"
	"net/url"
	"slices"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/registry"
)

// converted is one state's conversion, kept per state (in the chain's
// state through registry.Deriver, or in the Registry's registry.Memo) so
// that GetService converts once per state change. Nothing in it changes
// once stored.
//
// Each instance is either shared or private. A shared instance is handed
// to every read as is; a private one is copied for each read. An instance
// is shared when Kratos' ServiceInstance.Equal cannot write to its
// Endpoints: Equal sorts both slices in place with sort.Strings, which
// writes nothing to a sorted slice of at most 12 strings (an insertion
// sort that only swaps out-of-order neighbours; longer slices go through
// pdqsort, whose partitioning writes). See shareable for when an unsorted
// list may be sorted instead.
type converted struct {
	inst    []kratosregistry.ServiceInstance // every instance, in the state's order
	private []int                            // indexes into inst of the instances copied per read
	privEps int                              // the private instances' endpoints, counted
}

// maxShared is the longest Endpoints list a shared instance may have: the
// longest slice sort.Strings sorts by insertion alone.
const maxShared = 12

// convert builds the conversion of a shared state. The Metadata maps are
// cloned once here, so that a caller who writes into one (against the
// rule) cannot reach the registry's own state. The Endpoints are copied
// once too, sorted where shareable allows it.
func convert(ins []*registry.Instance) *converted {
	cv := &converted{inst: make([]kratosregistry.ServiceInstance, 0, len(ins))}
	n := 0
	for _, in := range ins {
		if in != nil {
			n += len(in.Endpoints)
		}
	}
	eps := make([]string, 0, n)
	for _, in := range ins {
		if in == nil {
			continue
		}
		si := kratosregistry.ServiceInstance{
			ID: in.ID, Name: in.Name, Version: in.Version,
			Metadata: maps.Clone(in.Metadata), Endpoints: in.Endpoints,
		}
		if len(in.Endpoints) > 0 {
			start := len(eps)
			eps = append(eps, in.Endpoints...)
			si.Endpoints = eps[start:len(eps):len(eps)]
		}
		if shareable(si.Endpoints) {
			slices.Sort(si.Endpoints)
		} else {
			cv.private = append(cv.private, len(cv.inst))
			cv.privEps += len(si.Endpoints)
		}
		cv.inst = append(cv.inst, si)
	}
	return cv
}

// shareable reports whether an instance with these endpoints can be shared
// between reads, its endpoints sorted. That holds when the list is at most
// maxShared long and either already sorted, or such that its order means
// nothing to Kratos: every endpoint parses as a URL and no two share a
// scheme. Kratos picks an instance's endpoint with the first of the list
// that has the scheme it wants (internal/endpoint.ParseEndpoint, which also
// fails on the first unparsable URL), so for such a list every order gives
// every scheme the same endpoint; Kratos itself treats the list as a set
// (Equal sorts it; its Consul registry returns it in map order). A list
// with two endpoints of one scheme keeps the registrant's order and is
// copied for each read.
func shareable(eps []string) bool {
	if len(eps) > maxShared {
		return false
	}
	if slices.IsSorted(eps) {
		return true
	}
	var schemes [maxShared]string
	for i, e := range eps {
		u, err := url.Parse(e)
		if err != nil || slices.Contains(schemes[:i], u.Scheme) {
			return false
		}
		schemes[i] = u.Scheme
	}
	return true
}

// instances returns a read of cv: a fresh slice of pointers, the caller's
// to reorder or filter, to ServiceInstances that are shared with every
// other read of the same state and must not be modified (Kratos only reads
// them, and calling Equal on them is safe; see converted), except the
// private ones, which are fresh copies with Endpoints of their own.
//
// A state whose instances are all shared costs one allocation per read;
// otherwise three: the private ServiceInstances and their Endpoints each
// come in one array, each instance's Endpoints a capacity-limited window of
// it so that an append reallocates instead of reaching a neighbour's.
func (cv *converted) instances() []*kratosregistry.ServiceInstance {
	out := make([]*kratosregistry.ServiceInstance, len(cv.inst))
	for i := range cv.inst {
		out[i] = &cv.inst[i]
	}
	if len(cv.private) == 0 {
		return out
	}
	block := make([]kratosregistry.ServiceInstance, len(cv.private))
	var eps []string
	if cv.privEps > 0 {
		eps = make([]string, 0, cv.privEps)
	}
	for j, i := range cv.private {
		si := &block[j]
		*si = cv.inst[i]
		if k := len(si.Endpoints); k > 0 {
			start := len(eps)
			eps = append(eps, si.Endpoints...)
			si.Endpoints = eps[start : start+k : start+k]
		}
		out[i] = si
	}
	return out
}

// adopt converts instances that are already the caller's (a backend's
// GetService copies) without copying them again.
func adopt(ins []*registry.Instance) []*kratosregistry.ServiceInstance {
	out := make([]*kratosregistry.ServiceInstance, 0, len(ins))
	for _, in := range ins {
		if in != nil {
			out = append(out, &kratosregistry.ServiceInstance{
				ID: in.ID, Name: in.Name, Version: in.Version,
				Metadata: in.Metadata, Endpoints: in.Endpoints,
			})
		}
	}
	return out
}
