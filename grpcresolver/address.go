package grpcresolver

import (
	"maps"
	"net/url"
	"strconv"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/regchain/regchain/grpcbalancer"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
)

// Info is what the resolver knows of the instance behind an address. It is
// attached to every Address and Endpoint it produces; balancers and
// interceptors read it with InfoFromAddress or InfoFromEndpoint. An Info is
// shared: do not modify it.
type Info struct {
	// ID and Version are the instance's.
	ID      string
	Version string
	// Metadata is the instance's metadata.
	Metadata map[string]string
	// Weight is the "weight" metadata parsed as a non-negative integer; 0
	// when absent or not a number.
	Weight uint32
}

// Equal reports whether i and o (an *Info) hold the same values; grpc-go
// uses it to compare address attributes.
func (i *Info) Equal(o any) bool {
	oi, ok := o.(*Info)
	if !ok || i == nil || oi == nil {
		return ok && i == oi
	}
	return i.ID == oi.ID && i.Version == oi.Version && i.Weight == oi.Weight && maps.Equal(i.Metadata, oi.Metadata)
}

// String makes attribute dumps readable.
func (i *Info) String() string { return i.ID + "@" + i.Version }

type infoKey struct{}

// InfoFromAddress returns the Info attached to an address the resolver
// produced, or nil.
func InfoFromAddress(a resolver.Address) *Info {
	i, _ := a.Attributes.Value(infoKey{}).(*Info)
	return i
}

// InfoFromEndpoint returns the Info attached to an endpoint the resolver
// produced, or nil.
func InfoFromEndpoint(e resolver.Endpoint) *Info {
	i, _ := e.Attributes.Value(infoKey{}).(*Info)
	return i
}

// hosts returns the host:port of in's endpoints with the given scheme.
func hosts(in *registry.Instance, scheme string) []string {
	var out []string
	for _, ep := range in.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme != scheme || u.Host == "" {
			continue
		}
		out = append(out, u.Host)
	}
	return out
}

// usableInstances returns the instances that have at least one endpoint
// with the scheme.
func usableInstances(ins []*registry.Instance, scheme string) []*registry.Instance {
	out := make([]*registry.Instance, 0, len(ins))
	for _, in := range ins {
		if len(hosts(in, scheme)) > 0 {
			out = append(out, in)
		}
	}
	return out
}

func infoOf(in *registry.Instance) *Info {
	i := &Info{ID: in.ID, Version: in.Version, Metadata: maps.Clone(in.Metadata)}
	if w, err := strconv.ParseUint(in.Metadata["weight"], 10, 32); err == nil {
		i.Weight = uint32(w)
	}
	return i
}

// buildState returns the resolver state of ins: one Endpoint per instance,
// and every address again in Addresses. hasLocality reports whether any
// instance carries a zone or region.
func buildState(ins []*registry.Instance, scheme string) (st resolver.State, hasLocality bool) {
	st = resolver.State{Endpoints: []resolver.Endpoint{}, Addresses: []resolver.Address{}}
	for _, in := range ins {
		attr := attributes.New(infoKey{}, infoOf(in))
		ep := resolver.Endpoint{Attributes: attr}
		for _, h := range hosts(in, scheme) {
			a := resolver.Address{Addr: h, Attributes: attr}
			ep.Addresses = append(ep.Addresses, a)
			st.Addresses = append(st.Addresses, a)
		}
		if l := locality.Of(in); l != (locality.Locality{}) {
			ep = grpcbalancer.SetLocality(ep, l)
			hasLocality = true
		}
		st.Endpoints = append(st.Endpoints, ep)
	}
	return st, hasLocality
}
