package chain

import (
	"slices"

	"github.com/regchain/regchain/registry"
)

// cloneInstances deep-copies src with as few allocations as the Instance
// type allows: one for the pointer slice, one for all the Instance structs,
// one for all the endpoint strings (each instance gets a capacity-limited
// window, so an append never reaches its neighbour's), and one per non-nil
// Metadata map. The strings themselves are immutable and shared.
func cloneInstances(src []*registry.Instance) []*registry.Instance {
	n := len(src)
	out := make([]*registry.Instance, n)
	if n == 0 {
		return out
	}
	block := make([]registry.Instance, n)
	neps := 0
	for _, in := range src {
		neps += len(in.Endpoints)
	}
	var eps []string
	if neps > 0 {
		eps = make([]string, neps)
	}
	for i, in := range src {
		b := &block[i]
		*b = *in
		if in.Metadata != nil {
			// make and a loop: about twice as fast as maps.Clone for the
			// few keys instances carry (same two allocations).
			md := make(map[string]string, len(in.Metadata))
			for k, v := range in.Metadata {
				md[k] = v
			}
			b.Metadata = md
		}
		if in.Endpoints != nil {
			k := copy(eps, in.Endpoints)
			b.Endpoints = eps[:k:k]
			eps = eps[k:]
		}
		out[i] = b
	}
	return out
}

// tidy returns the instances a tier handed over without nil entries and
// sorted, reusing s: a tier is any registry.Registry, and a nil Instance
// from one must not crash the chain.
func tidy(s []*registry.Instance) []*registry.Instance {
	s = slices.DeleteFunc(s, func(in *registry.Instance) bool { return in == nil })
	if s == nil {
		s = []*registry.Instance{}
	}
	registry.SortInstances(s)
	return s
}
