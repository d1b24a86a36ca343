// Package grpcresolver is a grpc-go name resolver over any
// registry.Registry: a backend, or better the fallback chain, so that gRPC
// clients keep their connections and keep finding servers while the
// registry is down.
//
//	b := grpcresolver.NewBuilder(reg)
//	conn, err := grpc.NewClient("regchain:///greeter",
//		grpc.WithResolvers(b),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// The resolver also gives the channel its service config (see "Balancing
// and retries"): the locality policy of package grpcbalancer when the
// instances carry a zone or region, round_robin otherwise, and a retry
// policy, so that calls keep succeeding while instances and datacenters
// fail.
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
// another scheme). Instances without such an endpoint are left out, and
// said so once per service at Warn (again only when the set left out
// changes), with up to five of their IDs. Every Address and Endpoint
// carries the instance's Info (ID, Version, Metadata and Weight, from the
// "weight" metadata key) as an attribute; read it with InfoFromAddress or
// InfoFromEndpoint. An Endpoint of an instance with zone or region metadata
// (locality.KeyZone, locality.KeyRegion) also carries its place for
// grpcbalancer (grpcbalancer.LocalityOf). The state also lists every
// address in State.Addresses for balancers that do not read Endpoints.
//
// Every instance the registry lists is handed over, every locality level
// included: the balancer orders them. A locality.Registry (what
// locality.Wrap returns) given to NewBuilder is read through its Unwrap, so
// that its per-read selection of one level does not hide the others, and
// its Self is the client's place unless WithLocality says otherwise.
//
// # Balancing and retries
//
// Unless WithServiceConfig replaces it, every state carries this service
// config (the zone and region are the client's place, left out when
// unknown: the balancer then reads REGCHAIN_ZONE and REGCHAIN_REGION):
//
//	{"loadBalancingConfig":[{"regchain_locality":{"zone":"eu-1a","region":"eu-1"}}],
//	 "methodConfig":[{"name":[{}],"retryPolicy":{
//	     "maxAttempts":3,"initialBackoff":"0.05s","maxBackoff":"0.1s",
//	     "backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}],
//	 "retryThrottling":{"maxTokens":100,"tokenRatio":0.1}}
//
// with {"round_robin":{}} as the policy when no instance carries a zone or
// region. The policy (package grpcbalancer) sends calls to the nearest
// level with READY connections and ejects endpoints whose calls fail; the
// retry policy moves a call whose connection died to another endpoint.
//
// What is retried, and when that is safe (gRFC A6):
//
//   - Always, whatever the config, grpc-go retries transparently a call
//     that never left the client or that reached the server's gRPC library
//     but not its handler (a stream refused by a server going away). Safe
//     for every method: nothing ran.
//   - The retryPolicy retries a call that ended UNAVAILABLE before any
//     response header arrived (once the server has answered, grpc-go
//     commits the call and never retries it), at most twice (3 attempts),
//     after about 50 ms and then 100 ms (grpc-go adds ±20 % jitter), within
//     the call's deadline; the balancer has taken the dead connection out of
//     its picks by then. UNAVAILABLE comes from two places. A server's
//     handler returns it to say "not processed, try again" (gRPC's status
//     code guide: the code for a retry that may succeed). grpc-go itself
//     returns it when the connection died while the call was in flight (the
//     server killed, its host or network lost, a keepalive timed out): then
//     the request had reached the server and only the answer was lost, so
//     the handler may have run and its effects may stand. A retry can
//     therefore run a method twice. That is safe for idempotent methods
//     (reads, health checks, writes keyed by a client-chosen ID or guarded
//     by a precondition) and is not for the others (an increment, a
//     payment without an idempotency key). A service that has such methods
//     must override the default: a methodConfig that retries only its
//     idempotent methods by name, or none.
//   - DEADLINE_EXCEEDED and every other code are not retried: a deadline
//     covers all attempts anyway, and the other codes are the
//     application's.
//   - No config saves two cases, so a killed server can still fail a few
//     calls: a call whose server had started answering (response headers
//     received) when its connection died is committed and fails; and in
//     grpc-go 1.71 a retry that lands on a second connection dying at that
//     very moment fails (a stream refused by a closing connection is
//     retried transparently only on a call's first attempt). Measured in
//     grpcbalancer's TestLevelFailoverAndBack: 7 committed failures in
//     11,724 calls over 45 runs of three kills each, none of the others.
//   - Nor does any service config save a call in flight on a connection
//     that is cut off silently (traffic dropped, no reset): no response
//     and no connection error come, the call ends DEADLINE_EXCEEDED at its
//     deadline and is not retried (grpc-go has no per-attempt timeout).
//     grpcbalancer.Retry, a dial option (no resolver can install an
//     interceptor), gives the attempts of idempotent methods a timeout of
//     their own and sends them on to another endpoint; the balancer ejects
//     the endpoint after such failures.
//   - Throttling (maxTokens 100, tokenRatio 0.1): the channel holds 100
//     tokens, loses one per attempt that ends UNAVAILABLE and gains 0.1 per
//     successful call (at most 100); no retry is made while 50 or fewer
//     are left. A datacenter that dies fails at once
//     every call in flight on its connections, and the bucket is large
//     enough to retry all of those; a lasting outage where every attempt
//     fails stops retrying instead of tripling the load on servers that
//     answer UNAVAILABLE because they are overloaded.
//
// Overriding: WithServiceConfig(js) makes the resolver send js instead
// (copy the default above and change it), WithServiceConfig("") makes it
// send none, so that grpc.WithDefaultServiceConfig applies. A service
// config a resolver sends takes precedence over
// grpc.WithDefaultServiceConfig (grpc-go's rule), unless the channel is
// dialled with grpc.WithDisableServiceConfig. grpc.WithDisableRetry turns
// every retry off, the transparent ones included.
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
