// Package nearest is the rule every client door of regchain follows to
// choose where a call goes: the Kratos selector (kratosplugin.NewSelector),
// the go-micro selector (microplugin/microservice) and any balancer that
// adopts it. The registry side (the chain) decides who exists and errs on
// the side of keeping instances; this package decides who answers, from
// what the door knows: the instances' places, the connections' states and
// the outcomes of the calls.
//
// It is framework-independent: a door builds one Endpoint per instance
// address from a Tracker, gives Pick its candidates, and reports each
// call's outcome to the Endpoint it went to.
//
// # The rules
//
//  1. Levels. An instance's level relative to the client is LevelOf(self,
//     metadata): locality.LevelZone when it is in the client's zone,
//     locality.LevelRegion when it is in the client's region (but not the
//     zone), locality.LevelAny otherwise. Zone and region matching is
//     locality.Locality.Matches, the one definition the locality wrapper
//     uses too. A client without a zone has no zone level, without a
//     region no region level.
//  2. Candidates. A door offers as candidates the instances a call could
//     be sent to now: with connection states (gRPC), only those whose
//     connection is READY; without (HTTP, go-micro), every listed instance.
//  3. The nearest answering level. A candidate is available when its
//     Endpoint is not ejected (rule 4) and the call has not tried it yet
//     (rule 6). Pick returns the available candidates of the nearest level
//     that has any; the door's own balancer (weighted round robin, p2c,
//     ...) chooses among them. So a call moves to the next level the moment
//     the nearer one has no available candidate, and comes back the moment
//     it has one again. When no candidate is available at any level, Pick
//     returns the non-ejected ones the call already tried (a later attempt
//     may go back to one), and when every candidate is ejected, the
//     candidates of the nearest level as if none were: ejection steers
//     traffic, it never turns a service into no service.
//  4. Ejection. An Endpoint is ejected after Ejection.ConsecutiveFailures
//     failed calls in a row (default 3), or when at least
//     Ejection.FailurePercentage (default 50) of its calls within one
//     Ejection.Interval (default 1s) failed and it had at least
//     Ejection.RequestVolume (default 10) calls in it (gRFC A50's failure
//     percentage; the window is judged at the first outcome reported after
//     it ends, and not at all when that comes more than an Interval
//     later). It is ejected for Ejection.BaseTime (default 5s) times
//     2^(k-1), capped at Ejection.MaxTime (default 60s), where k counts
//     its ejections since its last success. Outcomes of calls that were
//     already in flight when it was ejected change nothing. With
//     Ejection.MaxEjectionPercent below 100 (no cap by default), Pick
//     treats at most that share of a call's candidates as ejected (at
//     most ceil(pct*n/100) of n, gRFC A50's cap): the most recently
//     ejected ones beyond it are offered as if they were not.
//  5. Re-admission. Once its ejection time has passed (or the door
//     learnt that it is back: Endpoint.Readmit), an Endpoint is
//     available again, on probation: one call at a time. Pick gives it
//     to one call (returning it alone, so that the door's balancer cannot
//     choose another) and offers it to no other until that call's outcome
//     is reported (or BaseTime has passed without one), so a dead
//     endpoint's re-admission costs one attempt, not one per call in
//     flight; and a call that made a probe (its Tried record says so)
//     gets no second one while other candidates are available, so dead
//     endpoints on probation cannot use up a call's attempts. A success ends the
//     probation (k and the failure count go back to zero); a failure
//     ejects it again at once, for twice as long as before.
//  6. Retries go elsewhere. A call that may be retried carries a Tried
//     record (WithTried); the door adds to it the endpoint each attempt
//     went to (Tried.Add), and the next attempt's Pick treats the tried
//     ones as unavailable. Whether a failed call may
//     be retried at all is the door's rule (it depends on whether the
//     request may have reached the server application); see each door.
//  7. Outcomes. The door decides what a failure is and says so in its
//     docs. The common rule: a call fails the endpoint when the endpoint
//     did not answer (connection refused, reset or broken, a timeout) or
//     answered with a gateway-class error (gRPC UNAVAILABLE, HTTP
//     502/503/504); an error of the application (any other status) is an
//     answer, hence a success; a call the caller cancelled is no outcome
//     at all.
//  8. Attempt timeouts. An attempt that takes much longer than the
//     operation's recent successful attempts is given up, and the call
//     goes on to another endpoint (rule 6), where that is safe:
//     AttemptTimeouts gives Factor (default 4) times the slowest of the
//     last 64 to 128 successful attempts of the operation, at least Min
//     (default 100ms), and nothing before Samples (default 20) of them.
//     The doors apply it only to calls that may be sent again after a
//     timeout (idempotent by their rules), and never to a call's last
//     attempt, which keeps the rest of the call's deadline: a call that
//     really takes that long still gets its time, after an attempt or
//     two elsewhere. It is what reveals an endpoint cut off silently
//     (packets dropped, no reset, the connection still up) within a
//     fraction of the call's deadline; its given-up attempts count as
//     failures (rule 7) and eject it (rule 4).
//
// # A door, step by step
//
// How kratosplugin.Selector, microservice.Selector and grpcbalancer use
// the package:
//
//   - One Tracker for the door's life (a balancer builder's, or one per
//     ClientConn), so that outcomes survive the door's rebuilds (Kratos
//     and grpc-go's base balancer build a new picker at every change of
//     the ready connections).
//   - When the door learns its instances: per instance address, its
//     Endpoint (Tracker.Endpoint with a key naming service and address)
//     and its level (LevelOf with the instance's metadata).
//   - At each pick: the candidates (for gRPC, the READY SubConns only),
//     Pick with the call's Tried record (TriedFrom(ctx); nil when the
//     call carries none), the door's own balancing among what Pick
//     returns, then Tried.Add of the chosen Endpoint.
//   - When the call ends (gRPC's PickResult.Done, Kratos' DoneFunc,
//     go-micro's Mark): Endpoint.Report, unless the outcome counts for
//     nothing (rule 7; kratosplugin.CallFailed reads gRPC statuses).
//   - Retries: an interceptor or middleware calls WithTried once per call
//     and sends the call again only where that is safe (see
//     kratosplugin.Retry and microservice.Retry for the rules), with an
//     AttemptTimeouts for the attempts but the last of the calls it may
//     send again after a timeout (rule 8; kratosplugin.Retry and
//     microservice.AttemptTimeouts).
//
// # Concurrency
//
// Tracker, Endpoint and Tried are safe for concurrent use. Pick and
// Endpoint.Available take no lock: an Endpoint's ejection deadline is one
// atomic word. Tracker.Steady (one atomic load) says when no endpoint is
// ejected or on probation, so that a door on a hot path can skip Pick's
// pass over the candidates while nothing is (grpcbalancer does).
//
// # Caveats
//
//   - Re-admission is by time (no active probe), unless the door has
//     connection states (grpcbalancer readmits an endpoint whose
//     connection became READY again): a dead endpoint costs one failed
//     attempt per re-admission (retried elsewhere by the doors where that
//     is safe), and comes back within MaxTime of answering again, however
//     long it was gone.
//   - A Tracker forgets endpoints that have reported nothing for
//     Ejection.MaxTime + 10 minutes and are not ejected, so its size follows
//     the fleet; a door still holding such an Endpoint keeps using it, with
//     no history.
package nearest
