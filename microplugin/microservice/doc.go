// Package microservice fits a go-micro v4 service to regchain with options
// go-micro already has: its client sends calls to the nearest answering
// nodes and retries elsewhere what is safe to retry (Nearest), and the
// registry etcdchain.NewRegistry built is closed when the service stops
// (CloseOnStop):
//
//	reg := etcdchain.NewRegistry(registry.Addrs("10.0.0.1:2379"))
//	svc := micro.NewService(
//		micro.Name("greeter"),
//		micro.Registry(reg),
//		microservice.Nearest(microservice.Config{}), // zone from REGCHAIN_ZONE, region from REGCHAIN_REGION
//		microservice.CloseOnStop(),
//	)
//
// A client without a service uses the pieces: NewSelector is a go-micro
// selector.Selector, Retry a client.RetryFunc, Backoff a
// client.BackoffFunc, AttemptTimeouts a client.Wrapper (client.Wrap).
//
// This package imports go-micro's root, client and server packages,
// which start goroutines when imported; package microplugin itself
// imports only go-micro's registry.
//
// # Nearest answering nodes
//
// NewSelector applies package locality/nearest's rule through go-micro's
// selector interface. It reads the registry as go-micro's default
// selector does (through go-micro's registry cache, with the call's
// selector.Filters applied first), then:
//
//   - Each node's level relative to the client (WithLocality, or
//     REGCHAIN_ZONE and REGCHAIN_REGION) comes from its "zone" and
//     "region" metadata, which go-micro servers register with
//     server.Metadata.
//   - Every listed node is a candidate; go-micro has no connection state,
//     so a dead node is found by its calls failing. Select's Next returns,
//     in turn (round robin), the available candidates of the nearest level
//     that has any; a node one attempt of the call went to is not
//     available to the call's later attempts.
//   - go-micro's client reports each attempt's error to the selector
//     (Mark). CallFailed tells a failure (the node did not answer: no
//     connection, a connection broken in flight, a timeout, or
//     502/503/504) from an answer (any other error is the application's).
//     Failures in a row, or a high failure rate, eject the node, which
//     is re-admitted after a while, on probation (WithEjection; by
//     default 3 failures in a row or half of 10 or more calls within 1s,
//     for 5s doubling up to 60s).
//   - A selector.WithStrategy given to Select is ignored: the strategy is
//     the rule above. Reset forgets the service's history.
//
// # Retries
//
// go-micro's client retries a failed call (client.Retries, 5 by default)
// when its RetryFunc says so, calling Next again: with NewSelector, on
// another node. Retry is a RetryFunc that says so only when it is safe:
//
//   - Nothing reached the server: the connection could not be made
//     (go-micro's "connection error"), whatever the endpoint.
//   - The request may have reached the server, and sending it twice does
//     no harm: endpoints named in RetryConfig.Idempotent ("Greeter.Hello",
//     or "Greeter." for every method of a handler), after a connection
//     broken in flight, a timeout (go-micro's 408: an attempt longer than
//     client.Options.CallOptions.ConnectionTimeout, 5s by default) or a
//     502/503/504. go-micro's own default
//     (client.RetryOnError) retries timeouts of every endpoint; Retry
//     does not, since a timed-out request may have been carried out.
//   - Never: streams after their connection was made, application errors,
//     a call whose context is done.
//
// Backoff waits nothing before a retry: it goes to another node, which
// the first one's failure does not make busier (go-micro's default waits
// 100ms, then 660ms, ...).
//
// AttemptTimeouts gives each attempt but the last of a call of an
// Idempotent endpoint a timeout of its own, so that a node cut off
// silently (packets dropped, no reset: only a deadline reveals it) costs
// one attempt rather than go-micro's 5s ConnectionTimeout or the call. By
// default it adapts to the endpoint: 4 times the slowest of its recent
// successful attempts, at least 100ms, none before 20 of them (package
// locality/nearest, rule 8); the last attempt keeps go-micro's own, so a
// call that really takes long still gets its time.
// RetryConfig.AttemptTimeout sets a fixed one, or none.
//
// # Closing the registry
//
// etcdchain.NewRegistry (package microplugin/etcdchain) returns go-micro's
// registry interface, which has no Close, and owns a chain, an etcd client
// and a snapshot file.
// CloseOnStop adds an AfterStop function to the service that closes every
// microplugin registry of the service (its own, its client's and its
// server's) when the service stops, after it has deregistered; registries
// of other kinds are left alone. Nearest likewise closes the selector it
// made (and its registry cache).
package microservice
