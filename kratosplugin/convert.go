package kratosplugin

import (
	"maps"
	"slices"

	kratosregistry "github.com/go-kratos/kratos/v2/registry"

	"github.com/regchain/regchain/registry"
)

// ToInstance converts a Kratos ServiceInstance into a regchain Instance,
// field for field: both encode to the same JSON. Metadata and Endpoints are
// copied, so the result shares nothing with si. ToInstance of nil is nil.
func ToInstance(si *kratosregistry.ServiceInstance) *registry.Instance {
	if si == nil {
		return nil
	}
	return &registry.Instance{
		ID:        si.ID,
		Name:      si.Name,
		Version:   si.Version,
		Metadata:  maps.Clone(si.Metadata),
		Endpoints: slices.Clone(si.Endpoints),
	}
}

// FromInstance converts a regchain Instance into a Kratos ServiceInstance,
// field for field: both encode to the same JSON. Metadata and Endpoints are
// copied, so the result shares nothing with in (Kratos' ServiceInstance.Equal
// sorts endpoint slices in place). FromInstance of nil is nil.
func FromInstance(in *registry.Instance) *kratosregistry.ServiceInstance {
	if in == nil {
		return nil
	}
	return &kratosregistry.ServiceInstance{
		ID:        in.ID,
		Name:      in.Name,
		Version:   in.Version,
		Metadata:  maps.Clone(in.Metadata),
		Endpoints: slices.Clone(in.Endpoints),
	}
}

// fromInstances converts a list; the result is never nil.
func fromInstances(ins []*registry.Instance) []*kratosregistry.ServiceInstance {
	out := make([]*kratosregistry.ServiceInstance, 0, len(ins))
	for _, in := range ins {
		if in != nil {
			out = append(out, FromInstance(in))
		}
	}
	return out
}
