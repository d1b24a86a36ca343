// Package grpcresolver is a grpc-go name resolver over any
// registry.Registry: a backend, or better the fallback chain, so that gRPC
// clients keep their connections and keep finding servers while the
// registry is down.
//
//	b := grpcresolver.NewBuilder(reg)
//	conn, err := grpc.NewClient("regchain:///greeter",
//		grpc.WithResolvers(b),
//		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// # Targets
//
// The target is "regchain:///NAME" (the scheme can be changed with
// WithScheme); NAME is the service name. An authority
// ("regchain://anything/NAME") is ignored.
//
// # Addresses
//
// Each instance becomes one resolver.Endpoint whose addresses are the
// host:port of the instance's endpoints with scheme "grpc" (Kratos'
// "grpc://10.0.0.1:9000?isSecure=false" included; WithEndpointScheme picks
// another scheme). Instances without such an endpoint are left out. Every
// Address and Endpoint carries the instance's Info (ID, Version, Metadata
// and Weight, from the "weight" metadata key) as an attribute; read it with
// InfoFromAddress or InfoFromEndpoint. The state also lists every address
// in State.Addresses for balancers that do not read Endpoints.
//
// # Updates and errors
//
// The resolver watches the service (registry.Watcher) from Build until
// Close and pushes every new state with UpdateState. The rules:
//
//   - An error from the watcher never pushes anything: the last state
//     pushed stays, so a registry outage never wipes the addresses of a
//     working connection. The error goes to ReportError only while no
//     state has been pushed yet (nothing good is known), so that RPCs
//     waiting for a first address fail with it rather than hang.
//   - An Update with no usable address (no instance, or none with a
//     matching endpoint) is authoritative — registry.Update documents an
//     empty set as "authoritatively empty", and the chain holds a sudden
//     drop to zero until it is confirmed (its empty-push guard). Such an
//     Update is pushed as an empty address list once it has stayed empty
//     for WithEmptyDelay (default: at once), so a dead last instance does
//     not receive traffic forever. A non-empty Update within the delay
//     cancels it.
//   - Identical consecutive states are pushed once.
//
// ResolveNow does nothing: the resolver is watch-based, every change
// arrives by itself.
//
// # Idle mode
//
// grpc-go closes the resolver when a channel goes idle and builds a new one
// when it leaves idle. Close stops the watcher and waits for the resolver's
// goroutine, which never calls the ClientConn after Close returns; a later
// Build starts a fresh watch. A Builder serves any number of channels and
// Builds; it never closes the registry, which stays the caller's.
//
// # Caveats
//
// The registry's Watch must return at once (every regchain registry does).
// With a bare backend (no chain) a process that starts during an outage
// has no address until the backend comes back; build the resolver over a
// chain with a snapshot for that case.
package grpcresolver
