package chain

import (
	"slices"

	"github.com/regchain/regchain/registry"
)

// flatMetadata returns, per instance, its metadata as key, value pairs
// (nil for nil metadata): built once per state, it spares every copy the
// map iteration (its random start included).
func flatMetadata(src []*registry.Instance) [][]string {
	n := 0
	for _, in := range src {
		n += 2 * len(in.Metadata)
	}
	all := make([]string, 0, n)
	out := make([][]string, len(src))
	for i, in := range src {
		if in.Metadata == nil {
			continue
		}
		start := len(all)
		for k, v := range in.Metadata {
			all = append(all, k, v)
		}
		out[i] = all[start:len(all):len(all)]
	}
	return out
}

// cloneInstances deep-copies src with as few allocations as the Instance
// type allows: one for the pointer slice, one for all the Instance structs,
// one for all the endpoint strings (each instance gets a capacity-limited
// window, so an append never reaches its neighbour's), and a fresh
// Metadata map per instance that has one, filled from md (flatMetadata of
// src) when given. The strings themselves are immutable and shared.
func cloneInstances(src []*registry.Instance, md [][]string) []*registry.Instance {
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
		switch {
		case in.Metadata == nil:
		case md != nil:
			kv := md[i]
			m := make(map[string]string, len(kv)/2)
			for j := 0; j < len(kv); j += 2 {
				m[kv[j]] = kv[j+1]
			}
			b.Metadata = m
		default:
			m := make(map[string]string, len(in.Metadata))
			for k, v := range in.Metadata {
				m[k] = v
			}
			b.Metadata = m
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
