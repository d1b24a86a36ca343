// Command fleet measures what a fleet of processes costs one etcd: N
// members (one "process" each: its own etcd client, one registration, one
// watch of a peer service) built on regchain — kratosplugin over a chain
// over the etcd adapter — and then the same N built on Kratos' contrib etcd
// registry, one side after the other against the same embedded etcd, in
// one run.
//
// For each side it reports, at steady state, etcd's request rate (gRPC
// messages etcd received, per method, from its own Prometheus counters in
// this process), the process CPU time per second (getrusage; the process
// holds etcd and every member) and the heap and goroutines the members add;
// then it stops etcd for an outage (20 s by default), starts it again and
// reports the reconnect storm: etcd's request rate per 100 ms bucket after
// the restart (peak, how long it stays above twice the steady rate, how the
// first requests of the members spread), the requests by method and the
// bytes etcd sent over the recovery window, the registration keys written
// again and deleted, and how many keys are present along the way.
//
// -extra N first puts N records of 500 services no member watches in each
// side's namespace, as when teams share one: regchain's etcd adapter
// follows the whole namespace with one watch (and holds it in memory), the
// contrib registry watches one service's prefix, and the startup bytes and
// heap rows show what that costs each. -profile DIR writes each side's
// heap profile and goroutine stacks after the fleet settled, and a CPU
// profile of its steady window.
//
//	cd bench && go run ./fleet                 # N=200, about 2.5 minutes
//	cd bench && go run ./fleet -n 50 -outage 5s -steady 5s
//	cd bench && go run ./fleet -grpc-max-backoff 1s   # both sides redial within 1s
//	cd bench && go run ./fleet -sides regchain -probe 30s
//	cd bench && go run ./fleet -extra 5000 -outage 5s
//
// The members' clients keep gRPC's default connection backoff (1 s base,
// 120 s cap) unless -grpc-max-backoff is set: after a long outage it, not
// the registries, decides when a member reconnects.
//
// The program exits by itself: every wait is bounded and a watchdog ends
// it (exit status 2) once -deadline has passed.
package main
