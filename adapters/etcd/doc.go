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
// Register grants a lease of Config.TTL, puts the record under it and hands
// it to a goroutine of the registry, which runs KeepAlive and watches the
// key. When the keepalive ends (the lease expired during a partition or an
// outage, or was revoked) the goroutine grants a new lease and puts the
// record again; when the key is deleted or overwritten by another client it
// puts it back. It retries with capped, jittered exponential backoff for as
// long as the registration lives: until Deregister or Close, never a fixed
// number of times. Registrations reports which registrations are live and
// which are being restored.
//
// # Watches
//
// A watcher lists its prefix, then follows an etcd watch from the next
// revision, applying events to an in-memory copy (no read per event) and
// delivering the complete instance set of each changed service through a
// registry.Feed. After compaction, a lost leader, a broken stream or a lost
// connection it lists again and resumes; a lost connection or leader is
// reported by Next as a transient registry.ErrUnavailable, and the state
// listed afterwards is delivered even if unchanged. Update.Revision is the
// etcd revision.
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
//     key flips between them until one deregisters.
//   - With Username set, New authenticates and therefore fails while etcd is
//     unreachable; without it New never needs the server.
//   - With a Client passed in Config, reconnection timing and logging are the
//     caller's client's (New tunes only the clients it creates). A lost
//     connection is noticed from the client's gRPC connection state: behind
//     a silent partition that takes the client's keepalive pings (New's
//     clients: 10 s plus 5 s); without them, until TCP gives up.
package etcd
