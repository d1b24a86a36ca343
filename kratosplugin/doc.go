// Package kratosplugin makes any regchain registry — one backend or a
// fallback chain — the service registry of Kratos
// (github.com/go-kratos/kratos/v2) apps and clients: Registry implements
// Kratos' registry.Registrar and registry.Discovery.
//
//	reg := kratosplugin.New(c) // c: a *chain.Chain, or any registry.Registry
//	app := kratos.New(kratos.Name("greeter"), kratos.Server(gs, hs), kratos.Registrar(reg))
//	conn, err := grpc.DialInsecure(ctx,
//		grpc.WithEndpoint("discovery:///greeter"), grpc.WithDiscovery(reg))
//	client, err := http.NewClient(ctx,
//		http.WithEndpoint("discovery:///greeter"), http.WithDiscovery(reg))
//
// Kratos' ServiceInstance and regchain's Instance have the same fields and
// the same JSON; ToInstance and FromInstance convert field for field, so
// Version and Metadata (such as the "weight" Kratos' selectors read) pass
// through untouched, and records are shared with Kratos' contrib etcd
// registry when the etcd adapter uses the same namespace.
//
// # Kratos semantics
//
//   - Register passes Kratos' context (App uses one of 10 s) to the
//     underlying registry, which bounds only the first write with it: the
//     keepalive runs on the registry's own context, and the chain keeps a
//     registration it could not yet write and retries it.
//   - Watch returns within a fraction of a second even when every backend is
//     unreachable; Kratos' gRPC resolver gives watcher creation its dial
//     timeout (2 s by default) before failing with "discovery create watcher
//     overtime". If the underlying Watch blocks or fails with
//     registry.ErrUnavailable, the watcher keeps trying in the background.
//   - The first Next returns the current list at once; later calls block
//     until the list changes. Each call returns the complete list as fresh
//     copies: Kratos' ServiceInstance.Equal sorts endpoint slices in place.
//     A change of source alone (etcd to snapshot and back) is not a change.
//   - Transient watch failures are logged (WithLogger), not returned: Kratos'
//     resolvers would only log them and sleep a second before calling Next
//     again, which would delay the recovery; the last list stays in use.
//   - Once a watcher has ended — Stop, its Watch context done, the registry
//     closed — Next returns an error wrapping context.Canceled (and
//     registry.ErrStopped or registry.ErrClosed), the error on which
//     Kratos' resolver loops exit.
//   - Watch after Stop for the same service works: gRPC's idle mode closes
//     and rebuilds resolvers.
//   - GetService of a service without instances returns an empty list and a
//     nil error, as Kratos' contrib etcd registry does; other failures are
//     errors wrapping regchain's sentinels. Over a chain, GetService of a
//     service the chain watches is answered from memory.
//   - GetService over the chain (a registry.Deriver, as is a chain wrapped
//     by locality.Wrap) converts once per state, and the conversion is kept
//     in the chain's state itself; over another registry.SharedReader once
//     per state too (a registry.Memo recognises the state by the identity
//     of the shared Instances, or else by equal content). A read
//     then costs one allocation: a fresh slice of pointers to
//     ServiceInstances shared by every read of that state, which must not
//     be modified. Kratos only reads them, and its contrib Consul registry
//     shares its cached instances the same way. Their Endpoints are sorted
//     when the order cannot change what Kratos picks (at most one endpoint
//     per scheme: Kratos takes the first of the scheme it wants), so that
//     ServiceInstance.Equal, which sorts in place, writes nothing to them.
//     An instance with two endpoints of one scheme (or one that does not
//     parse as a URL), or more than 12, keeps
//     the registrant's order and each read gets a copy of it, Endpoints
//     included. Over any other registry everything returned is the
//     caller's.
//
// # Nearest answering instances
//
// The registry says who exists; a client must also know who answers. A
// Selector (NewSelector) applies package locality/nearest's rule to every
// Kratos client of the process, gRPC and HTTP, through Kratos' own
// selector: one line before the clients are created,
//
//	selector.SetGlobalSelector(kratosplugin.NewSelector(kratosplugin.SelectorConfig{}))
//
// (Kratos' HTTP client takes the global selector when it is created; its
// gRPC balancer builds one at every change of its ready connections.)
//
//   - Each instance's level relative to SelectorConfig.Self (or
//     REGCHAIN_ZONE and REGCHAIN_REGION) comes from its "zone" and
//     "region" metadata (package locality).
//   - A call's candidates are the nodes Kratos offers after the client's
//     own node filters (WithNodeFilter, such as filter.Version). Kratos'
//     gRPC balancer offers only instances whose connection is READY and,
//     with Kratos' default health check, SERVING: a level whose
//     connections are all down is skipped at once and used again as soon
//     as one is READY. Kratos' HTTP client offers every discovered
//     instance: a dead one is found by its calls failing.
//   - The selector keeps the available candidates of the nearest level
//     that has any (not ejected, not yet tried by this call), and Kratos'
//     balancer (SelectorConfig.Balancer, wrr by default as in Kratos)
//     picks among them.
//   - Kratos reports each call's end to the selector (the Done callback);
//     CallFailed tells a failure (no answer, or 502/503/504, gRPC
//     UNAVAILABLE or DEADLINE_EXCEEDED) from an answer. Failures in a row,
//     or a high failure rate, eject the instance, which is re-admitted
//     after a while, on probation (SelectorConfig.Ejection; by default 3
//     failures in a row or half of 10 or more calls within 1s, for 5s
//     doubling up to 60s).
//   - Outcomes are kept per Selector, keyed by service, scheme and
//     address, across the selectors Kratos builds from it: Kratos' gRPC
//     balancer (transport/grpc/balancer.go, grpc-go's base balancer with
//     health checks) builds a new picker, and a new selector from the
//     global builder, at every change of its READY connections.
//   - When a service has no READY connection at all, Kratos' picker makes
//     gRPC calls wait (until their deadline) for one, rather than fail.
//
// # Retries
//
// Retry is a client middleware, for gRPC and HTTP clients, that sends a
// failed call again to an instance the call has not tried, with no
// backoff (another instance is not made busier by the first one's
// failure), within the call's timeout and at most RetryConfig.Attempts
// times (3). It retries only where that is safe:
//
//   - Nothing reached the server: an HTTP connection that could not be
//     made (refused, unreachable, dial timeout), whatever the method.
//     gRPC does the same by itself for every method, with no setting
//     (transparent retry: a stream that never left the client, or that
//     the server reports unprocessed, as one going away does, is picked
//     again).
//   - The request may have reached the server, and sending it twice does
//     no harm: HTTP requests without a body whose method RFC 9110 makes
//     idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or that carry an
//     Idempotency-Key, after a transport error (a connection reset or
//     broken in flight), a 502/503/504 or an attempt's timeout; gRPC
//     methods named in RetryConfig.Idempotent (grpc-go's health Check
//     always), after UNAVAILABLE (what a call in flight on a connection
//     that dies gets) or an attempt's timeout.
//   - Never: a call the caller cancelled or whose deadline passed, an
//     application error, a call for which no instance was picked, an HTTP
//     request with a body that may have been sent.
//
// Each attempt but the last of a call that may be sent again after a
// timeout has a timeout of its own, so that an instance cut off silently
// (packets dropped, no reset: only a deadline reveals it) costs one
// attempt rather than the call. By default it adapts to the operation:
// 4 times the slowest of its recent successful attempts, at least 100ms,
// none before 20 of them (package locality/nearest, rule 8); the last
// attempt keeps the rest of the call's deadline, so a call that really
// takes long still gets its time. RetryConfig.AttemptTimeout sets a fixed
// one, or none. Operations are told apart by the client's endpoint and
// the Kratos operation (for an HTTP call without one, its method and
// path).
//
// # Caveats
//
//   - A watcher lives as long as the context given to Watch. Kratos' HTTP
//     client passes the context of http.NewClient: give it one without a
//     deadline, or the client stops following changes when it expires
//     (Kratos' contrib registries behave the same).
//   - Kratos' resolvers ignore empty lists ("Zero endpoint found, refused to
//     write"): when a service drops to no instances, clients keep their last
//     addresses until instances come back.
//   - Registry does not own the underlying registry: close it yourself after
//     the apps and clients using it have stopped.
//   - Service names must pass registry.ValidateName (letters, digits, '.',
//     '_', '-', ':'); Register and Watch reject others with
//     registry.ErrInvalid.
//
// # Files
//
//   - registry.go: Registry, New, Register, GetService, Watch.
//   - readcache.go: a state's conversion, made once per state and shared
//     by reads.
//   - convert.go: ToInstance and FromInstance.
//   - watcher.go: the watcher Watch returns.
//   - selector.go, retry.go: the Kratos selector (nearest answering
//     instances) and the retry middleware.
//   - slog.go: SlogHandler.
package kratosplugin
