// Package drain measures chain.Drain against real servers: for each
// backend (etcd in-process, a Consul dev agent, a ZooKeeper server), the
// time from the start of a drain until a client watching the service
// through its own connection stops seeing the instance (gone-ms), and
// until Drain returns (drain-ms), as medians and maxima. Drain returns once
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
