// Package consul is regchain's Consul backend: a registry.Registry that
// registers instances as services of the local Consul agent, keeps them
// alive with a TTL check, and discovers them with blocking queries that all
// of a registry's watchers share.
//
//	r, err := consul.New(consul.Config{Address: "127.0.0.1:8500", Token: token})
//	...
//	defer r.Close()
//
// # Encoding
//
// An instance is stored the way Kratos' contrib Consul registry
// (github.com/go-kratos/kratos/contrib/registry/consul) stores it, so a
// Kratos app registered with that registry is discovered by regchain and the
// reverse:
//
//   - service ID = the instance ID, service name = Name;
//   - Meta = Metadata;
//   - one tag "version=<Version>";
//   - TaggedAddresses keyed by endpoint scheme, each holding the full
//     endpoint URL (and its port); Address and Port = the first endpoint's
//     host and port.
//
// What Kratos' layout cannot hold goes where Kratos' reader still makes sense
// of it, and regchain reads it back without loss:
//
//   - A second, third... endpoint of one scheme is keyed "<scheme>_1",
//     "<scheme>_2", ... (an underscore cannot occur in a URL scheme). Kratos'
//     resolver takes every tagged address as an endpoint, so it sees them too.
//   - Metadata entries Consul's Meta cannot take as they are (a key outside
//     [A-Za-z0-9_-] or longer than 128 bytes, a "consul-" key, a value over
//     512 bytes, more than 63 entries, or a key that looks like one of the
//     reserved keys below) are spilled: a JSON object of those entries, cut
//     into values of at most 512 bytes under "regchain-md-0",
//     "regchain-md-1", ... Kratos readers see these keys as metadata. Entries
//     that fit stay native, in key order, as many as the 64 slots allow; one
//     slot is always reserved for "regchain-id". Metadata that does not fit
//     even fully spilled (about 31 KiB of JSON) is refused with
//     registry.ErrInvalid and a message saying how much it needs; nothing is
//     written. Nothing is ever truncated.
//   - One agent has one service ID namespace, while regchain's key is name and
//     ID. When another service already holds the instance ID on the agent,
//     the service ID is "<name>:<id>" and Meta "regchain-id" holds the
//     instance ID; regchain decodes the instance ID from it, Kratos readers
//     see the longer ID.
//
// Decoding accepts both layouts and services registered by anything else:
// tagged addresses that are not URLs (the agent's own lan_ipv4, wan_ipv4,
// ...) are skipped; a service without endpoint URLs gets
// "http://<address>:<port>" (the node's address when the service has none),
// as Kratos' resolver does. A service that still does not make a valid
// instance is skipped and logged, never a panic.
//
// # Keepalive
//
// Register writes the service with a TTL check (Config.TTL; RegisterTTL, a
// registry.TTLRegistrar: a TTL of its own) that is already
// passing, so the instance is visible at once, and a heartbeat passes the
// check every TTL/3 on the registry's own context. When the agent answers
// that the check is unknown (it restarted and lost its state, an operator
// deregistered the service, the agent reaped it after
// DeregisterCriticalServiceAfter) the heartbeat registers it again; failures
// are retried with capped backoff and jitter for as long as the registration
// lives. Registrations reports each registration's state.
//
// A heartbeat that could not reach the agent at all (no answer: the agent is
// down or cut off) does not wait out its backoff: one probe per registry
// asks the agent for its leader (GET /v1/status/leader, a constant cost)
// every 100 ms, and the moment the agent answers with a leader -- or a Ping
// succeeds -- every waiting heartbeat retries at once. A registration is
// back within about 100 ms of the agent answering again, whatever the
// outage's length and the TTL. An agent that answers with an error (429,
// 5xx) is left to each heartbeat's jittered backoff, so that a busy agent is
// not hit by every heartbeat at once. Ping is the same leader query: its
// cost does not grow with the data.
//
// # Watch
//
// Every watcher of a Registry, named or watch-all, is served by one hub,
// which starts with the first watcher and stops with the last one (or
// Close). It holds at most six connections to the agent however many
// services are watched: two blocking queries and up to four reads at a
// time, all on the registry's HTTP client.
//
//   - /v1/health/state/any, blocking, filtered to the checks of the
//     services watched by name and the node checks (unfiltered while a
//     watch-all runs, or past 256 services): its index moves on any check
//     change. A fingerprint of each service's checks (IDs, statuses,
//     indexes) and of the node checks of their nodes says which services
//     changed; only those are read again.
//   - /v1/catalog/services, blocking: its index moves on any registration
//     change, including a re-registration with new Meta or addresses that
//     touches no check. It lists the services for watch-alls; when its index
//     moves (or a node check changes, which can matter to instances without
//     a check of their own) every watched service is read again, since
//     nothing says which one changed. A full re-read starts at least a
//     second after the previous one ended, later after a long one (nine
//     times its duration, and no more than 50 reads a second on average),
//     but never more than 30 seconds later.
//   - A read is /v1/health/service/<name>?passing, not blocking. A new
//     watcher's service is read at once, before anything else: the first
//     Next returns the state read after Watch was called.
//
// The blocking loops follow Consul's rules: an index that goes backwards is
// reset to 0 and everything is read again, an index of 0 is never waited
// on, each loop is rate-limited (50ms), and every query is bounded by
// WaitTime plus Consul's jitter plus a margin so that a dead connection
// fails instead of hanging. A failed loop query reaches every watcher as a
// transient error; a failed read reaches the watchers of that service and
// the watch-alls. Both are retried with capped backoff, and after a loop
// failure everything is read again. Empty states are delivered; a watch-all
// hears of a service once it has passing instances, and then of every
// state, down to the empty one when its last instance leaves.
// Update.Revision is the index of the read.
//
// # Errors
//
// Network errors, timeouts, 429 and 5xx answers wrap registry.ErrUnavailable.
// An ACL refusal (403: unknown token, missing permission) wraps
// registry.ErrInvalid and ErrPermissionDenied: it is a configuration
// problem, and failing over to another tier would hide it.
//
// # Files
//
// Each file owns one part; only registry.go, which builds and closes the
// others, and the files that read the Registry's fields use each other
// both ways (scripts/shape.sh -pairs lists such pairs).
//
//   - registry.go: the Registry type, New, Close, Ping, GetService,
//     ListServices, the decoding of health entries.
//   - config.go: Config, its defaults and checks.
//   - register.go: Register, RegisterTTL, Deregister, Registrations,
//     ValidateInstance, and each registration's heartbeat, with the probe
//     that wakes heartbeats when the agent answers again.
//   - watch.go: Watch.
//   - hub.go: the watch machinery every watcher shares: the two blocking
//     loops, the fingerprints, the reads, delivered through a
//     registry.Hub.
//   - blocking.go: Consul's rules for a blocking-query loop.
//   - errors.go: the classification of Consul's answers into registry
//     sentinels, ErrPermissionDenied.
//   - codec.go: an Instance to and from an agent service registration.
//
// # Caveats
//
//   - GetService and watchers return passing instances only; ListServices
//     lists the catalog's services whatever their health, including the
//     "consul" service itself.
//   - With default-deny ACLs Consul filters what a token may not read out of
//     results instead of refusing: a service the token cannot read looks
//     empty. GetService then returns ErrPermissionDenied instead of
//     ErrNotFound; watchers deliver the empty state and log a warning.
//   - Consul raises DeregisterCriticalServiceAfter below one minute to one
//     minute and reaps every 30 s, so a dead instance stays in the catalog (as
//     critical, invisible to passing-only reads) for up to 1m30s.
//   - The choice between the plain and the "<name>:<id>" service ID is made
//     when an instance is first registered; two processes registering the
//     same ID for different services on one agent at the same moment can
//     still overwrite each other, as with Kratos' registry.
//   - Metadata values are sent as JSON strings: bytes that are not UTF-8 come
//     back as U+FFFD, as with every JSON-based backend.
//   - A change that touches no check (new Meta, addresses or tags on a
//     re-registration) is seen through the catalog query, by a full
//     re-read: up to about a second later when another one just ran, more
//     with many watched services. Any registration change in the
//     datacenter starts such a re-read, so a registry watching many
//     services reads them all again once a second while the catalog keeps
//     changing.
//   - The check query returns on every check change in the datacenter (at
//     most 20 times a second): with a watch-all it carries every check,
//     otherwise the node checks and those of the watched services.
//   - A registry holds at most 14 connections to the agent (when it
//     builds its own client): the hub's six, the heartbeats' four (at most
//     four at once, however many registrations) and four for the caller's
//     own requests, which wait for a free one beyond that. Consul caps
//     connections per client IP
//     (limits.http_max_conns_per_client, 200 by default), which every
//     process on a host shares when they all talk to the local agent.
//   - Ping asks for the leader, which Consul answers whatever the token: a
//     bad token shows up on the first real call, as ErrPermissionDenied.
//   - Close deregisters nothing: the checks turn critical after their TTL and
//     the agent removes the services later.
package consul
