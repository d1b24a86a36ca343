package registry

import (
	"maps"
	"slices"
	"strings"
)

// Instance is one running copy of a service. Its JSON encoding is
// byte-for-byte the one of Kratos' registry.ServiceInstance, so regchain and
// Kratos' contrib registries read each other's records.
//
// An Instance is a plain value: not safe for concurrent mutation. Registries
// copy the Instances they are given and return copies.
type Instance struct {
	// ID identifies the instance within its service; (Name, ID) is the key.
	ID string `json:"id"`
	// Name is the service name.
	Name string `json:"name"`
	// Version is free-form (Kratos' selector may filter on it).
	Version string `json:"version"`
	// Metadata is free-form (e.g. "weight", "zone"); passed through untouched.
	Metadata map[string]string `json:"metadata"`
	// Endpoints are URLs with a scheme and a host, e.g.
	// "grpc://10.0.0.1:9000?isSecure=false", "http://10.0.0.1:8000".
	Endpoints []string `json:"endpoints"`
}

// Clone returns a deep copy of in. Clone of nil is nil.
func (in *Instance) Clone() *Instance {
	if in == nil {
		return nil
	}
	out := *in
	if in.Metadata != nil {
		out.Metadata = maps.Clone(in.Metadata)
	}
	if in.Endpoints != nil {
		out.Endpoints = slices.Clone(in.Endpoints)
	}
	return &out
}

// Equal reports whether in and o describe the same instance: same ID, Name,
// Version and Metadata (a nil map equals an empty one), and the same set of
// Endpoints in any order. Unlike Kratos' ServiceInstance.Equal it never
// reorders its arguments' slices.
func (in *Instance) Equal(o *Instance) bool {
	if in == nil || o == nil {
		return in == o
	}
	if in.ID != o.ID || in.Name != o.Name || in.Version != o.Version {
		return false
	}
	if len(in.Metadata) != len(o.Metadata) || !maps.Equal(in.Metadata, o.Metadata) {
		return false
	}
	if len(in.Endpoints) != len(o.Endpoints) {
		return false
	}
	if slices.Equal(in.Endpoints, o.Endpoints) {
		return true
	}
	a, b := slices.Clone(in.Endpoints), slices.Clone(o.Endpoints)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Key returns "name/id", a map key unique per instance.
func (in *Instance) Key() string { return in.Name + "/" + in.ID }

// String returns "name/id@version", for messages. A part that is long or
// does not print as it is (an instance read from outside, before
// validation) is shown as Quote shows it: bounded and escaped (Clip).
func (in *Instance) String() string {
	if in == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString(Clip(in.Name))
	b.WriteByte('/')
	b.WriteString(Clip(in.ID))
	if in.Version != "" {
		b.WriteByte('@')
		b.WriteString(Clip(in.Version))
	}
	return b.String()
}

// SortInstances sorts s in place by ID (then Name), the order Updates use.
func SortInstances(s []*Instance) {
	slices.SortFunc(s, func(a, b *Instance) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// EqualInstances reports whether a and b hold equal instances, compared as
// sets keyed by (Name, ID). Neither slice is modified.
func EqualInstances(a, b []*Instance) bool {
	if len(a) != len(b) {
		return false
	}
	sorted := func(s []*Instance) bool {
		return slices.IsSortedFunc(s, func(x, y *Instance) int {
			if c := strings.Compare(x.ID, y.ID); c != 0 {
				return c
			}
			return strings.Compare(x.Name, y.Name)
		})
	}
	if !sorted(a) {
		a = slices.Clone(a)
		SortInstances(a)
	}
	if !sorted(b) {
		b = slices.Clone(b)
		SortInstances(b)
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
