package grpcbalancer

import (
	"google.golang.org/grpc/resolver"

	"github.com/regchain/regchain/locality"
)

type localityKey struct{}

// SetLocality returns ep with its place attached, for the policy to order
// it by. Resolvers call it on each endpoint (grpcresolver does, from the
// instances' zone and region metadata).
func SetLocality(ep resolver.Endpoint, l locality.Locality) resolver.Endpoint {
	ep.Attributes = ep.Attributes.WithValue(localityKey{}, l)
	return ep
}

// LocalityOf returns the place SetLocality attached to ep; ok is false when
// there is none.
func LocalityOf(ep resolver.Endpoint) (l locality.Locality, ok bool) {
	l, ok = ep.Attributes.Value(localityKey{}).(locality.Locality)
	return l, ok
}
