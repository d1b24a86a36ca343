package kratosplugin

import (
	"maps"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/registry"
)

// converted is one state's conversion, kept per service in the Registry's
// statecache.Cache so that GetService converts once per state change and
// then only copies (see copyInstances). Nothing in it changes once stored.
type converted struct {
	tmpl []kratosregistry.ServiceInstance // the templates copyInstances copies
	eps  []string                         // every template's Endpoints, in order, in one array
}

// convert builds the templates of a shared state. The Metadata maps are
// cloned once here, so that a caller who writes into one (against the
// rule) cannot reach the registry's own state. The Endpoints of all
// templates are laid out in one array, so that copyInstances copies them
// at once; each template's Endpoints is its capacity-limited window of it.
func convert(ins []*registry.Instance) *converted {
	cv := &converted{tmpl: make([]kratosregistry.ServiceInstance, 0, len(ins))}
	n := 0
	for _, in := range ins {
		if in != nil {
			n += len(in.Endpoints)
		}
	}
	cv.eps = make([]string, 0, n)
	for _, in := range ins {
		if in == nil {
			continue
		}
		si := kratosregistry.ServiceInstance{
			ID: in.ID, Name: in.Name, Version: in.Version,
			Metadata: maps.Clone(in.Metadata), Endpoints: in.Endpoints,
		}
		if len(in.Endpoints) > 0 {
			start := len(cv.eps)
			cv.eps = append(cv.eps, in.Endpoints...)
			si.Endpoints = cv.eps[start:len(cv.eps):len(cv.eps)]
		}
		cv.tmpl = append(cv.tmpl, si)
	}
	return cv
}

// copyInstances returns fresh instances from cv's templates: the
// ServiceInstances and their Endpoints slices are the caller's (Kratos'
// ServiceInstance.Equal sorts endpoint slices in place); the Metadata maps
// are shared with every other read of the same state and must not be
// modified (Kratos only reads them).
//
// It allocates three times whatever the number of instances: the pointer
// slice, one array of ServiceInstances, and one backing array for all
// Endpoints, each instance's a capacity-limited window so an append
// reallocates instead of reaching a neighbour's. Both arrays are filled
// with one copy each.
func copyInstances(cv *converted) []*kratosregistry.ServiceInstance {
	out := make([]*kratosregistry.ServiceInstance, len(cv.tmpl))
	if len(cv.tmpl) == 0 {
		return out
	}
	block := make([]kratosregistry.ServiceInstance, len(cv.tmpl))
	copy(block, cv.tmpl)
	var eps []string
	if len(cv.eps) > 0 {
		eps = make([]string, len(cv.eps))
		copy(eps, cv.eps)
	}
	off := 0
	for i := range block {
		si := &block[i]
		if k := len(si.Endpoints); k > 0 {
			si.Endpoints = eps[off : off+k : off+k]
			off += k
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
