// Package drain measures chain.Drain against real servers: for each
// backend (etcd in-process, a Consul dev agent, a ZooKeeper server), the
// time from the start of a drain until a client watching the service stops
// seeing the instance — through its own connection to the backend
// (gone-raw) and through its own chain over the backend (gone-chain) —
// and until Drain returns (drain), as p50, p90 and max in milliseconds.
// Two more instances of the service stay registered, so that the drained
// one is no drop a client chain's guard would hold. Drain returns once
// a fresh watch of each tier no longer shows the instance; a client that
// has been watching for a while may see the removal a little later than
// that, by its own watch's latency: the Consul adapter starts at most one
// blocking query per 50ms, and a removal it sees only through the catalog
// query waits for its next full re-read, at least 1s after the last one
// (adapters/consul, hub.go: minFullGap).
//
//	go test -run '^$' -bench . -benchtime 20x ./bench/drain
//
// Consul needs its binary (bash scripts/install-consul.sh, or
// $REGCHAIN_CONSUL); ZooKeeper needs scripts/install-zookeeper.sh.
package drain
