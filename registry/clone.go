package registry

import "maps"

// CloneInstances returns a deep copy of s: nil for nil, an empty slice for
// an empty one, nil entries kept as nil. The copy shares no slice or map
// with s (strings are immutable and shared), keeps nil Metadata and nil
// Endpoints nil, and Equal holds entry by entry.
//
// It allocates as little as the Instance type allows, whatever len(s): one
// pointer slice, one array of Instance structs, one backing array for every
// Endpoints slice (each instance gets a window whose capacity ends where its
// neighbour's begins, so an append reallocates instead of overwriting it)
// and one map per non-nil Metadata. As a consequence the Instances of one
// copy stay reachable together until none of them is.
func CloneInstances(s []*Instance) []*Instance {
	if s == nil {
		return nil
	}
	out := make([]*Instance, len(s))
	n, neps := 0, 0
	for _, in := range s {
		if in != nil {
			n++
			neps += len(in.Endpoints)
		}
	}
	if n == 0 {
		return out
	}
	block := make([]Instance, n)
	var eps []string
	if neps > 0 {
		eps = make([]string, neps)
	}
	j := 0
	for i, in := range s {
		if in == nil {
			continue
		}
		c := &block[j]
		j++
		*c = *in
		if in.Metadata != nil {
			c.Metadata = maps.Clone(in.Metadata)
		}
		switch {
		case len(in.Endpoints) > 0:
			k := copy(eps, in.Endpoints)
			c.Endpoints = eps[:k:k]
			eps = eps[k:]
		case in.Endpoints != nil:
			c.Endpoints = []string{} // empty but not nil, as given
		}
		out[i] = c
	}
	return out
}
