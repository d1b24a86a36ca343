package chain

import (
	"slices"

	"github.com/regchain/regchain/registry"
)

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
