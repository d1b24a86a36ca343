// Package etcd is regchain's etcd v3 backend: a registry.Registry that
// stores each instance under a lease and keeps it alive, reads with
// linearizable range reads and watches with etcd watches.
//
// # Layout
//
// An instance lives at <namespace>/<name>/<id> (namespace "/microservices"
// unless configured), its value the Instance's JSON (registry.Marshal). That
// is the layout and encoding of Kratos' contrib etcd registry
// (github.com/go-kratos/kratos/contrib/registry/etcd/v2), so Kratos services
// and regchain share one namespace. Service reads and watches use the prefix
// <namespace>/<name>/ with the trailing slash, so "foo" never sees "foobar";
// a watch of every service uses <namespace>/ and groups keys by name.
//
// # Registrations
//
// Register grants a lease of Config.TTL (RegisterTTL, a
// registry.TTLRegistrar: of its own TTL), puts the record under it and hands
// it to a goroutine of the registry, which runs KeepAlive and watches the
// key. When the keepalive ends (the lease expired during a partition or an
// outage, or was revoked) the goroutine grants a new lease and puts the
// record again; when the key is deleted or overwritten by another client it
// puts it back. It retries with capped, jittered exponential backoff for as
// long as the registration lives: until Deregister or Close, never a fixed
// number of times; when the client's connection comes back after being
// lost, every pending restore is tried at once rather than when its backoff
// says. A lease the keepalive gave up on during an outage is taken back
// when etcd still has it (a restarted etcd restores its leases), so the
// record stays present throughout. A record deleted by another client is
// put back at once, every time; one overwritten by another client is put
// back at once the first time and with growing delays after that (two
// processes sharing an instance ID). Registrations reports which
// registrations are live and which are being restored.
//
// Every request a registration makes (grant, put, keepalive, the checks
// and restores of the keeper, Deregister's delete and revoke) requires a
// leader (clientv3.WithRequireLeader): a member cut off from the majority
// refuses it at once instead of holding it until Config.Timeout, and it is
// sent again, which the client's round-robin balancer routes to another
// member, until one with a leader answers or the timeout ends. The
// keepalive stream requires one too: when its member loses the leader,
// clientv3 ends it at once rather than when the TTL has run out on the
// client's side, and the lease is taken back through a member that has a
// leader, before it expires when that takes less than the TTL (else the
// record is put again under a new lease). So a client attached to a
// minority member keeps its registrations live through the majority, as
// long as it can reach a majority member.
//
// # History changes
//
// etcd may come back with another history: wiped and rebuilt empty, or
// restored from a snapshot whose revisions are behind what this client has
// seen. The registry follows the header of every linearizable response
// (reads, writes, lease grants, Ping): a changed cluster ID, or a revision
// (or raft term) below the highest seen that a fresh linearizable read
// confirms, means a new history. It then checks every registration in the
// new history (re-creating it under a new lease when it is missing or
// stale; not reported Live until checked), restarts each registration's
// watch of its own key from the new revision (the old watch would wait for
// a revision the new history reaches much later, and miss every delete
// before), and lists the namespace again for the watchers. A probe runs
// each time the connection becomes ready again, so a change is noticed
// within one round trip of reconnecting. What no client can notice: a new
// history that has already passed the highest revision seen before this
// client talks to it again; etcd's own answer to that is `etcdutl snapshot
// restore --bump-revision --mark-compacted`, which the watchers handle as a
// compaction.
//
// # Watches
//
// Every watcher of a registry is fed by one etcd watch over the whole
// namespace and one goroutine, whatever the number of watched services. It
// lists the watched services' prefixes at one revision (the whole
// <namespace>/ when more than 64 are watched or a watch-all is; in pages of
// 5,000 records, each bounded by Config.Timeout), keeps the decoded records
// of the watched services in memory (the others are skipped undecoded),
// follows an etcd
// watch from the next revision (WithRequireLeader, WithProgressNotify) and
// delivers the complete instance set of each changed service to that
// service's watchers and the watch-alls through registry.Feeds (no read per
// event). A service first watched while the watch runs is read alone (one
// range over its prefix), unless more than 64 wait at once; a watch-all
// makes it hold every service. Update.Revision is the etcd revision.
//
// The watch starts with the first watcher and stops 10 s after the last
// has gone, or later while a lost connection awaits its confirmation: a
// chain stops a tier's watchers while the tier is down and starts new ones
// when it is back, and these get their first states from the state the
// watch kept, confirmed, instead of from a new list.
//
// After compaction, a lost leader, a broken stream or a history change the
// namespace is listed again. A lost connection costs no list: the watch
// resumes with the connection from the revision after the last it
// delivered, and the states are confirmed at once if the store is still at
// the revision last applied, or else once each watched service has been
// read again alone (more than 64, a watch-all, or no confirmation within
// 10 s: a list). A lost connection or leader is reported by Next as a
// transient registry.ErrUnavailable (to a watcher started during the
// outage too), and the state listed or confirmed afterwards is delivered
// even if unchanged. So a fleet coming back from an etcd outage reads no
// namespace, unless it was compacted meanwhile.
//
// The cost: a process watching one service receives the events of the
// whole namespace from etcd (it decodes only its services'). What the
// confirmation cannot tell: an
// etcd rebuilt with the same cluster ID during the outage whose revision
// is exactly the one last applied when the client reconnects.
//
// # Two layouts
//
// Config.Codec chooses the record layout. Two are in use: regchain's and
// Kratos' contrib registry's (KratosCodec, the default, under
// /microservices) and the go-micro etcd plugin's (microplugin.EtcdCodec,
// under /micro/registry, which reads both). A registry reading the wrong
// one sees nothing; it says so, once, at WARN:
//
//   - KratosCodec finding a record in go-micro's layout under its
//     namespace skips it (as any record it cannot decode) and warns once
//     that the namespace holds go-micro records and microplugin.EtcdCodec
//     reads them; further such records are logged at DEBUG only. (Any
//     other codec is taken to read go-micro records: one it cannot decode
//     is logged as malformed.)
//   - A read that finds a service absent (GetService's ErrNotFound, an
//     empty ListServices, a watched service with no instance) makes the
//     registry look, in the background, whether the other layout's
//     default namespace holds records (one range of at most one key,
//     keys only): /micro/registry for a KratosCodec registry,
//     /microservices for any other, unless that is its own namespace. If
//     it does, the registry warns once that its fleet is probably there
//     and which Config reads it, and looks no more. It looks at most once
//     a minute.
//
// # Ping
//
// Ping is a linearizable read of one fixed key that holds no instance (the
// namespace key itself), count only: etcd answers it after a ReadIndex
// round, which needs a leader that a quorum still follows, and a point
// lookup in its key index. Its cost does not grow with the number of
// records, so a fleet probing once a second adds constant leader work per
// process.
//
// Ping sends nothing when it need not: when etcd answered the registry's
// own traffic less than Config.PassivePing ago on a ready connection, it
// succeeds; when the client's connection is failing (its last attempt at
// every endpoint failed: gRPC's TRANSIENT_FAILURE, or a reconnection
// attempt since, not yet ready), it waits for the
// connection without sending anything, answering the moment it is ready
// again (then with its request) or, at its deadline, an error wrapping
// registry.ErrUnavailable. A request sent meanwhile would only have waited
// in gRPC for the same thing. A process probing a dead etcd thus costs it
// no calls beyond gRPC's reconnection attempts, and sees it back as soon
// as before.
//
// # Files
//
// Each file owns one part. Only registry.go, which builds and closes the
// others, and codec.go (the record layout, which reads the Registry's
// codec) use each other's declarations both ways (scripts/shape.sh -pairs
// lists such pairs).
//
//   - registry.go: the Registry type, New, Close, Ping, GetService,
//     ListServices, and the monitor of the client's connection.
//   - config.go: Config, its defaults and checks.
//   - register.go: Register, RegisterTTL, Deregister, Registrations.
//   - keepalive.go: a registration and its keeper: the lease keepalive,
//     the watch of its own key, the restores.
//   - watch.go: Watch.
//   - hub.go: what every watcher shares: the store, the watchers' feeds (a
//     registry.Hub), what was reported to them.
//   - store.go: the watched services' records and revision (no I/O, no
//     lock of its own).
//   - follow.go: the follower: the goroutine that lists, follows the etcd
//     watch and confirms the states after a lost connection.
//   - list.go: reads of the namespace for the watch: lists, a service read
//     alone, the confirmation after a reconnection.
//   - conn.go: what reads, keepers and the watch share: the client, the
//     bounds of its requests, the history followed through etcd's
//     answers, Ping's probe, the registry's goroutines.
//   - history.go: the judgement of one answer's header (no I/O).
//   - errors.go: the classification of etcd's errors into registry
//     sentinels, and the errors the registry reports.
//   - leader.go: requests that need a leader.
//   - codec.go: Codec (the record layout; KratosCodec the default), keys
//     and records: the key layout, decoding, skipped records.
//   - layout.go: the warnings about the other record layout.
//
// # Caveats
//
//   - Register's ctx bounds only the first write. When that write fails
//     (etcd down) nothing is kept: Register returns the error, wrapping
//     registry.ErrUnavailable, and the caller (the chain) retries.
//   - Close does not revoke leases: this process's records disappear when
//     their leases expire, up to TTL after Close. Call Deregister first to
//     remove them at once.
//   - Deregister stops the keepalive before deleting the key; if etcd is
//     unreachable it returns ErrUnavailable and the record lingers until its
//     lease expires.
//   - Records that fail to decode, or whose name or ID differ from their key,
//     are skipped by GetService, ListServices and watchers and logged once per
//     record version; they never stop a watcher.
//   - Two processes registering the same (name, ID) overwrite each other; each
//     restores its own record with growing delays (up to MaxBackoff), so the
//     key flips between them until one deregisters; the other puts its
//     record back at once after that delete.
//   - With Username set, New authenticates and therefore fails while etcd is
//     unreachable; without it New never needs the server.
//   - With a Client passed in Config, reconnection timing and logging are the
//     caller's client's (New tunes only the clients it creates). A lost
//     connection is noticed from the client's gRPC connection state: behind
//     a silent partition that takes the client's keepalive pings (New's
//     clients: 10 s plus 5 s); without them, until TCP gives up.
package etcd
