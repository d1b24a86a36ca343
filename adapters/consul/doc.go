// Package consul is regchain's Consul backend: a registry.Registry that
// registers instances as services of the local Consul agent, keeps them
// alive with a TTL check, and discovers them with blocking queries.
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
// Register writes the service with a TTL check (Config.TTL) that is already
// passing, so the instance is visible at once, and a heartbeat passes the
// check every TTL/3 on the registry's own context. When the agent answers
// that the check is unknown (it restarted and lost its state, an operator
// deregistered the service, the agent reaped it after
// DeregisterCriticalServiceAfter) the heartbeat registers it again; failures
// are retried with capped backoff and jitter for as long as the registration
// lives. Registrations reports each registration's state.
//
// # Watch
//
// A watcher runs blocking queries on /v1/health/service/<name>?passing with
// the index of the previous answer: an index that goes backwards is reset to
// 0, an index of 0 is never waited on, each loop is rate-limited, and every
// query is bounded by WaitTime plus Consul's jitter plus a margin so that a
// dead connection fails instead of hanging. Empty states are delivered. After
// a failure the loop backs off and relists. Update.Revision is the Consul
// index. A watch-all follows /v1/catalog/services (blocking too) and runs one
// such loop per service.
//
// # Errors
//
// Network errors, timeouts, 429 and 5xx answers wrap registry.ErrUnavailable.
// An ACL refusal (403: unknown token, missing permission) wraps
// registry.ErrInvalid and ErrPermissionDenied: it is a configuration
// problem, and failing over to another tier would hide it.
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
//   - Every watch loop holds one HTTP connection in a blocking query, and a
//     watch-all runs one loop per service. Consul caps connections per client
//     IP (limits.http_max_conns_per_client, 200 by default), which every
//     process on a host shares when they all talk to the local agent.
//   - Ping asks for the leader, which Consul answers whatever the token: a
//     bad token shows up on the first real call, as ErrPermissionDenied.
//   - Close deregisters nothing: the checks turn critical after their TTL and
//     the agent removes the services later.
package consul
