// Package zk is regchain's ZooKeeper backend: a registry.Registry over
// github.com/go-zookeeper/zk.
//
// # Layout
//
// Each instance is an ephemeral znode <root>/<name>/<id> (root defaults to
// /microservices) whose data is the instance's JSON (registry.Marshal). Its
// parents are persistent empty nodes created as needed. This is the layout of
// Kratos' contrib ZooKeeper registry, so a mixed fleet of Kratos services and
// regchain users sees one set of instances.
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
// Failed attempts are retried with capped backoff for as long as the
// registration lives; Registrations reports which ones are live.
//
// # Watches
//
// Watchers use children watches on service nodes, data watches on instance
// nodes and exists watches on nodes that do not exist yet, re-armed after
// each fire. Each watcher is one goroutine; every goroutine ends on Stop, on
// the Watch ctx or on Close. A lost connection is reported as a transient
// ErrUnavailable error by Next, and the state is confirmed again once the
// session is back.
//
// # Access control
//
// With Config.User and Config.Password the Registry authenticates with the
// digest scheme and creates its nodes with the ACL digest (all permissions)
// plus world READ: any client can discover the services, none without the
// credentials can change or delete the nodes (ZooKeeper answers ErrNoAuth).
//
// # Caveats
//
//   - go-zookeeper calls take no context and queue while the connection is
//     down, so the Registry issues none without a session: a call waits for
//     one within its ctx and Config.RequestTimeout and then fails with
//     registry.ErrUnavailable. A call whose connection drops under it is left
//     behind until go-zookeeper answers or fails it. With a connection passed
//     in Config.Conn, such calls may outlive Close until that connection is
//     closed.
//   - Two live Registries holding the same (name, ID) -- a replacement
//     process started while the old one still runs -- each replace the
//     other's node; repeated takeovers back off (from 100 ms up to
//     Config.MaxRetryDelay), so the node changes hands a few times a second
//     at most until one of them deregisters or exits.
//   - go-zookeeper fires each watch once and keeps its channel until then: a
//     watcher stopped before its watches fire leaves them registered on the
//     connection (one small buffered channel each, no goroutine) until the
//     node changes.
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
