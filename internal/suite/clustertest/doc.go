// Package clustertest runs regchain's etcd adapter and chain against a real
// 3-member etcd cluster (embedetcd.StartCluster) through the faults a
// multi-datacenter deployment meets: the client's member cut off from the
// other two (the minority side of a partition) while the client still
// reaches it, the leader killed under load, a member wiped and re-joined,
// and the cluster restored from an older snapshot; and the ZooKeeper
// adapter against a 3-server ensemble (Debian's package, Linux) whose
// servers are killed one after the other. It has only tests; the figures
// they measure are logged (go test -v).
//
// The rules each scenario holds the adapter to:
//
//   - a client configured with every member's endpoint keeps its
//     registrations live through the majority: the record is never absent
//     from the majority for longer than the lease TTL plus the adapter's
//     MaxBackoff, and is present again before the scenario ends;
//   - a watcher (the adapter watches WithRequireLeader) moves off a member
//     that lost its leader and delivers changes made on the majority within
//     the same bound;
//   - nothing is silently frozen: after every fault heals, reads and
//     watchers show the cluster's current state.
package clustertest
