// Package grpcbalancer is a grpc-go load balancing policy that sends calls
// to the nearest instances that answer: it orders a channel's endpoints by
// locality (the client's zone, then its region, then anywhere), picks from
// the nearest level that has READY connections, moves to the next level the
// moment a level has none, and ejects endpoints whose calls fail.
//
// The registry (and regchain's chain) decides who exists and errs on the
// side of keeping: a held drop, a last known good state, a snapshot. This
// policy decides who answers, from the connections themselves, as gRPC's
// xDS priority (gRFC A56) and outlier detection (gRFC A50) policies do.
//
// It is registered under Name ("regchain_locality") when the package is
// imported; grpcresolver imports it and selects it by default for services
// whose instances carry locality. Any resolver can use it: attach each
// endpoint's place with SetLocality and select it by service config:
//
//	{"loadBalancingConfig":[{"regchain_locality":{"zone":"eu-1a","region":"eu-1"}}]}
//
// # Levels
//
// Each endpoint is put at its nearest level as seen from the client's place
// (the config's zone and region; fields left empty are read from
// REGCHAIN_ZONE and REGCHAIN_REGION): LevelZone for the client's zone,
// LevelRegion for the rest of its region, LevelAny for the rest, endpoints
// without a place included (locality.Locality.Nearest). A client with no
// place puts every endpoint at LevelAny: the policy is then round robin with
// outlier ejection.
//
// # Picks
//
// Every endpoint gets a connection (a pick_first child per endpoint, as
// round_robin does), whatever its level: a farther level is connected
// before it is needed, so moving to it costs no connection setup. A pick
// goes, round robin, to the READY endpoints of the nearest level that has
// at least one READY endpoint that is not ejected: package
// locality/nearest's Pick, with the READY endpoints as candidates (rule 2
// there), so the grpc-go door follows the same rule as the Kratos and
// go-micro ones. So:
//
//   - A level whose endpoints are all CONNECTING, IDLE or in
//     TRANSIENT_FAILURE is skipped at once: there is no failover timer
//     (A56 waits up to 10 s for a CONNECTING priority; a datacenter that
//     just died has CONNECTING endpoints that will not connect).
//   - At start, calls go to the first level that has a READY endpoint, even
//     while a nearer level is still connecting; they move to the nearer
//     level as soon as one of its endpoints is READY (failback is
//     immediate too).
//   - When no endpoint is READY anywhere, calls wait (the channel is
//     CONNECTING) while any endpoint is connecting, and fail with the
//     connection errors when all are in TRANSIENT_FAILURE (wait-for-ready
//     calls keep waiting, as with any grpc-go policy).
//   - When the only READY endpoints are ejected ones, calls go to them,
//     nearest level first: an ejection never leaves a channel with nothing.
//   - A call carrying a nearest.Tried record (nearest.WithTried, set by
//     Retry's interceptor or one of yours) is not sent again to an
//     endpoint it tried.
//     grpc-go's own retries carry none; a retry after a connection died
//     finds that connection out of the READY set.
//
// # Outlier ejection
//
// Package locality/nearest's rules 4 and 5, with one Tracker per channel.
// A call counts as failed when it ends with UNAVAILABLE,
// DEADLINE_EXCEEDED, INTERNAL or DATA_LOSS (the codes of a server or a
// connection in trouble; application errors such as NOT_FOUND or
// INVALID_ARGUMENT, and calls the client cancelled, do not count), as
// succeeded when it ends with any other result after the server answered.
//
//   - Consecutive failures: an endpoint whose last ConsecutiveFailures
//     calls (default 3) all failed is ejected at once.
//   - Failure rate (gRFC A50's failure percentage): an endpoint that had
//     at least RequestVolume calls (default 10) in an Interval (default
//     1s), of which at least FailurePercentage % (default 50) failed, is
//     ejected (judged at its first result after the interval).
//   - Max ejection: at most MaxEjectionPercent % (default 50) of the READY
//     endpoints count as ejected, at most ceil(pct*n/100) of n: A50's cap,
//     with a higher default than A50's 10 %, so that both instances of a
//     two-instance zone can go while another zone serves. Beyond it, the
//     most recently ejected ones receive picks as if they were not.
//   - Re-admission: an ejected endpoint comes back after BaseEjectionTime
//     (default 5s), doubled for each ejection since it last answered, at
//     most MaxEjectionTime (default 1m), on probation: one call at a time
//     until one succeeds; a failure on probation ejects it again. An
//     endpoint whose connection becomes READY again after it was down is
//     re-admitted at once, on probation: a restarted server or a
//     datacenter that is back gets calls without waiting for the ejection
//     to end.
//
// An ejected endpoint keeps its connection; it only receives no picks
// (except as said above when nothing else is READY). Ejections and level
// changes are logged (slog.Default) with the channel's target. Ejection
// costs nothing per pick while no endpoint of the channel is ejected or on
// probation (nearest.Tracker.Steady); a result's report is one
// nearest.Endpoint.Report.
//
// # Config
//
//	{"regchain_locality": {
//	    "zone": "eu-1a", "region": "eu-1",
//	    "outlierDetection": {
//	        "consecutiveFailures": 3, "failurePercentage": 50, "requestVolume": 10,
//	        "interval": "1s", "baseEjectionTime": "5s", "maxEjectionTime": "1m",
//	        "maxEjectionPercent": 50
//	    }
//	}}
//
// Every field may be left out (its default applies); "outlierDetection":
// {"disabled": true} turns ejection off. Durations are Go durations
// ("500ms", "1.5s"). Client-side health checking (healthCheckConfig in the
// service config) applies as with round_robin: an endpoint whose health
// service says NOT_SERVING is not READY.
//
// # Caveats
//
// A level is chosen on READY connections, not on their number: a zone with
// one READY endpoint out of ten gets the zone's whole traffic (there is no
// spill-over by share, unlike Envoy's overprovisioning factor); eject or
// deregister the failing ones. A connection that is cut off silently (no
// reset, traffic dropped) stays READY until keepalives or call deadlines
// reveal it, and a policy can neither set keepalives nor end the calls in
// flight: without Retry those fail at their deadline (grpc-go has no
// per-attempt timeout; a keepalive, grpc.WithKeepaliveParams, pings no
// more often than every 10s). Retry gives the attempts of idempotent
// methods a timeout of their own and sends them on to endpoints they have
// not tried; consecutive DEADLINE_EXCEEDED results eject the endpoint, and
// the registry withdrawing it moves the rest.
//
// # Retry
//
// Retry (a dial option; RetryInterceptor for a chain of your own) is the
// gRPC door's equivalent of kratosplugin.Retry: for the methods listed
// idempotent (the health check always), each attempt but the last gets a
// timeout of its own (adaptive by default: package locality/nearest, rule
// 8) and an attempt that timed out or ended UNAVAILABLE is sent again to
// an endpoint the call has not tried, at most Attempts (3) in all. Other
// methods are sent once, as without it.
package grpcbalancer
