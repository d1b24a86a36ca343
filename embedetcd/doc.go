// Package embedetcd runs a real etcd server in-process on loopback, for
// tests, benchmarks, demos and examples that must run with nothing
// installed. See package etcdtest for helpers bound to a testing.TB.
//
// The server keeps its client address across Stop and Start, so clients
// reconnect to a restarted server as they would to a real one. Clients reach
// etcd through an in-process TCP proxy; Stop closes it first, cutting every
// client connection as a crash does, and while stopped connections are
// refused. Proxy gives fault tests a partition switch on the same path.
//
// Wipe, Snapshot and Restore change the server's history under its clients
// for disaster tests: Wipe brings it back empty (revisions from 1 again),
// Restore brings back the older history of a snapshot taken earlier
// (etcdutl's restore), both at the same address.
//
// StartCluster runs a multi-member cluster instead (Cluster): each member's
// client port behind its own fault proxy, its peer port behind a proxy that
// knows which member dialed, so that one member can be cut off from the
// others while its clients still reach it (Cluster.Isolate), a member can
// be killed, restarted or replaced by an empty one (Member.Stop, Start,
// Cluster.Replace), and the whole cluster restored from a snapshot
// (Cluster.Snapshot, Cluster.Restore, with etcdutl's restore at the etcd
// version of go.mod).
//
// # Caveats
//
// Importing this package brings etcd's server into your build: use it from
// tests and tools, not from production binaries.
package embedetcd
