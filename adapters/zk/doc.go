// Package zk is regchain's ZooKeeper backend: a registry.Registry over
// github.com/go-zookeeper/zk.
//
// # Layout
//
// Each instance is an ephemeral znode <root>/<name>/<id> (the root is
// Config.Namespace, /microservices by default) whose data is the
// instance's JSON (registry.Marshal). Its parents are persistent empty
// nodes created as needed. This is the layout of Kratos' contrib ZooKeeper
// registry, so a mixed fleet of Kratos services and regchain users sees one
// set of instances.
//
// # Sessions
//
// A registration lives as long as the ZooKeeper session that created it. A
// keeper goroutine per registration holds a data watch on its node and puts
// the node back whenever it is lost: when the session expires and
// go-zookeeper reconnects with a new one, when someone else deletes it, and
// when someone else overwrites its data. A node left by an earlier session
// (a restarted process, or an expired session whose node ZooKeeper has not
// removed yet) is recognised by its ephemeral owner, deleted and re-created.
// A node its own session still holds is never deleted or re-created: after
// an outage the keepers only confirm it. Keepers react to the connection's
// session events (not to a timer): a session regained kicks every keeper at
// once. Failed attempts are retried with capped backoff for as long as the
// registration lives; Registrations reports which ones are live.
//
// Reconnecting: go-zookeeper pauses a second between rounds of its server
// list and waits about ten receive timeouts for a handshake a starting
// server never answers. The Registry paces its dials itself (50 ms doubling
// to 400 ms, reset by a session) and cuts an unanswered handshake after 1 s
// (doubling to 8 s while they keep failing), so it is back within about
// half a second of the server answering again, whatever the outage's
// length. Registrations are reported not Live once the session has been
// gone longer than Config.SessionTimeout (the server has expired it, or
// will), until their nodes are confirmed again.
//
// History changes: a server wiped, or restored from a backup older than
// what the client has seen, refuses the client's session ("has seen zxid
// 0x… our last zxid is 0x…") and closes the connection; go-zookeeper forgets
// its zxid only when told the session expired, so it would retry forever.
// After two refused handshakes in a row the Registry dials a probe
// connection; if the probe gets a session and the old connection is refused
// again after that, the probe replaces it: every registration is re-created
// and defended on the new session, every watch is re-read from the new
// history. A service node whose Pzxid went backwards (a restored history
// under a session that survived) has all its instances read again. This
// needs a connection the Registry dials itself (not Config.Client).
//
// # Watches
//
// Every watcher of a Registry is served by one goroutine, its watch hub,
// whatever the number of watchers and services. The hub keeps a children
// watch on each watched service node (an exists watch while the node is
// missing) and a data watch on each of its instance nodes -- one set per
// Registry, shared by all its watchers of the service; a watch-all (name
// "") also watches the children of the root. go-zookeeper's event callback
// queues each fired watch by path, and the hub reads only what changed: a
// changed instance's data, a service's children list (and then only the new
// children's data, up to 64 requests in flight on the connection). Its cost
// is linear in the changes, not in the instances; after a batch of events,
// each changed service's complete state is published once. Each goroutine
// ends on Close. A lost connection is reported by Next as a transient
// ErrUnavailable error, and the state is confirmed again once the session
// is back.
//
// # Reads
//
// GetService reads through the watch hub: a service read once is kept
// current by the hub's watches for a minute after its last GetService (and
// for as long as it is watched), so repeated reads of a large service cost
// no I/O, and a read that outlived its caller's ctx goes on and is found by
// the next call. A state is answered only while the connection has a
// session, and never one older than the Registry's own writes: ZooKeeper
// delivers the watch event of a write before the write's answer, and an
// event makes the hub forget its state of that service until it is read
// again. Ping is one Exists on the root: its cost does not grow with the
// data.
//
// # Access control
//
// With Config.Username and Config.Password the Registry authenticates with the
// digest scheme and creates its nodes with the ACL digest (all permissions)
// plus world READ: any client can discover the services, none without the
// credentials can change or delete the nodes (ZooKeeper answers ErrNoAuth).
//
// # Files
//
// Each file owns one part; only registry.go, which builds and closes the
// others, and the files that read the Registry's fields use each other
// both ways (scripts/shape.sh -pairs lists such pairs).
//
//   - registry.go: the Registry type, New, Close, Ping, GetService (read
//     through the watch hub), ListServices, and the way every call waits
//     for a session.
//   - config.go: Config, its defaults, checks and former field names.
//   - register.go: Register, Deregister, Registrations, and each
//     registration's keeper.
//   - watch.go: Watch.
//   - hub.go: the watch hub every watcher shares: its queue of watch
//     events and subscriptions, its goroutine, the services' states,
//     delivered through a registry.Hub.
//   - hubread.go: the hub's reads of what its watches said changed.
//   - cache.go: the states GetService answers from.
//   - conn.go: the connection, its session and its replacement after a
//     history change; dialer.go: how the Registry dials; tls.go: TLS.
//   - errors.go: the classification of ZooKeeper's errors into registry
//     sentinels.
//   - codec.go: the node layout and the decoding of a node's data.
//
// # Caveats
//
//   - go-zookeeper calls take no context and queue while the connection is
//     down, so the Registry issues none without a session: a call waits for
//     one within its ctx and Config.Timeout and then fails with
//     registry.ErrUnavailable. A call whose connection drops under it is left
//     behind until go-zookeeper answers or fails it. With a connection passed
//     in Config.Client, such calls may outlive Close until that connection is
//     closed.
//   - Two live Registries holding the same (name, ID) -- a replacement
//     process started while the old one still runs -- each replace the
//     other's node; repeated takeovers back off (from 100 ms up to
//     Config.MaxBackoff), so the node changes hands a few times a second
//     at most until one of them deregisters or exits.
//   - go-zookeeper fires each watch once and ZooKeeper has no way to
//     remove one: a service nobody watches or reads any more keeps its
//     watches on the connection (a small buffered channel each, no
//     goroutine) until its nodes change.
//   - With a connection passed in Config.Client the Registry sees no events
//     (go-zookeeper's event callback is set at dial time): it polls the
//     session state every 250 ms, each armed watch costs a small goroutine
//     that ends when the watch fires or the Registry closes, and a history
//     change (see Sessions) cannot be recovered from: the Registry does not
//     own that connection.
//   - A first read of a very large service is bounded by ZooKeeper's
//     request rate (one getData per instance: 20,000 instances take
//     seconds on a loaded two-core machine); later reads come from the hub.
//   - Kratos' contrib registry, given credentials, creates nodes readable only
//     with them; this Registry makes its nodes world-readable. Parents that
//     already exist keep their ACL: an instance under a world-writable service
//     node created by someone else can be deleted by anyone (the keeper then
//     puts it back).
//   - Service nodes are never deleted, so ListServices counts only services
//     whose node has at least one child.
//   - Live in Registrations is what the keeper last confirmed: a disconnection
//     shorter than the session timeout leaves the node in place and the
//     registration Live.
//   - Closing a Registry that dialled its own connection ends the session:
//     ZooKeeper deletes its nodes at once rather than after the session timeout.
package zk
