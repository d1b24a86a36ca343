package chain

import (
	"maps"

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
			b.Metadata = maps.Clone(in.Metadata)
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
