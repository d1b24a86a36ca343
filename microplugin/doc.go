// Package microplugin makes any regchain registry — one backend or the
// fallback chain — the registry of a Go-Micro v4 service:
//
//	reg := microplugin.New(chain)
//	svc := micro.NewService(micro.Name("greeter"), micro.Registry(reg))
//
// It imports only go-micro.dev/v4/registry (and its logger): a program
// importing it links no backend. Package microplugin/etcdchain builds an
// etcd-backed chain from go-micro's registry options (the go-micro etcd
// plugin's way), and EtcdCodec is the etcd adapter's codec for the go-micro
// etcd plugin's record layout.
//
// # Mapping
//
// A go-micro Service{Name, Version, Metadata, Endpoints, Nodes} becomes one
// regchain Instance per node (ToInstances): ID = node ID, Endpoints =
// "<transport>://<node address>" (the node's "transport" metadata, or
// "micro"), Metadata = the node's metadata plus two reserved keys holding
// the service metadata and the RPC endpoint descriptors as JSON. Reading
// back (FromInstances) groups instances into one Service per version and
// restores all of it, so a service survives the round trip. Instances
// written by other programs (Kratos apps) are read too, with the host of
// their first endpoint as node address. go-micro's node IDs ("name-uuid")
// are valid regchain IDs; names and IDs outside regchain's charset (letters,
// digits, '.', '_', '-', ':') are refused with an error wrapping
// registry.ErrInvalid.
//
// # Options
//
// go-micro's registry options are honoured where they make sense:
//   - Timeout bounds each Register, Deregister, GetService and ListServices
//     call (DefaultTimeout when zero); RegisterContext, DeregisterContext,
//     GetContext and ListContext are the parents of those calls, and
//     WatchContext bounds a watcher's life.
//   - Logger receives the warnings (ignored options, records that cannot be
//     mapped, transient watch errors).
//   - WatchService selects the watched service; without it Watch watches
//     every service.
//   - Addrs, Secure and TLSConfig: with New they are ignored (and logged as
//     such), since the backend is given already connected and addresses and
//     TLS belong to its own Config; with etcdchain.NewRegistry they build
//     the etcd backend.
//   - RegisterTTL is ignored: each backend keeps its registrations alive with
//     its own lease or session TTL, set in its Config, and keeps them until
//     Deregister, so go-micro's periodic re-registration is merely harmless.
//
// Init may be called any number of times; options accumulate.
//
// # Reads
//
// Over the chain (a registry.Deriver, as is a chain wrapped by
// locality.Wrap), GetService converts the instances to go-micro Services
// once per state, kept in the chain's state itself; over another
// registry.SharedReader, once per state too (a registry.Memo), recognised
// by the identity of the shared Instances, which never change once
// published, or else by equal content. Every read hands out a copy of that
// conversion with the copy semantics of go-micro's own registry/cache
// (util.Copy): the Services, Nodes and Endpoints are new structs in new
// slices, the caller's to modify or append to; their Metadata maps and
// endpoint Values are shared by every read of the same state and must not
// be modified. A copy costs a handful of allocations whatever the number of
// nodes. Conversion problems (an undecodable descriptor) are logged once
// per state (over a chain, by the plugin that converted it). Over any other registry each read converts the fresh copies
// GetService returns, which the caller then owns entirely. Reads without a
// GetContext share a deadline context made at most a tenth of Timeout
// earlier (each read is bounded by 0.9 to 1 times Timeout), so that a read
// answered from memory does not pay for a timer.
//
// # Records in etcd
//
// EtcdCodec (etcd.Config{Codec: microplugin.EtcdCodec{}}) stores each
// instance as the go-micro etcd plugin stores a node: the JSON of a
// go-micro Service with that one node under
// /micro/registry/<name>/<node id>. The reserved keys become the
// service's metadata and endpoint descriptors again, so the plugin reads
// regchain's nodes and regchain reads the plugin's. An instance with other
// endpoints than the one URL its node implies (a Kratos app's) keeps them
// in the node metadata key "regchain-endpoints".
//
// # Caveats
//
//   - Empty node metadata comes back as nil, and nodes come back sorted by ID.
//   - All nodes of one version share the service metadata and endpoint
//     descriptors of the first (by ID), as with go-micro's own registries;
//     watch results keep each node's own.
//   - The descriptors are copied into every node's metadata. Backends with
//     small metadata limits (Consul caps a value at 512 bytes) may refuse a
//     service with many endpoints.
//   - Watcher.Next does not return transient backend errors (it logs them):
//     regchain watchers retry by themselves, and go-micro's cache would drop
//     its watcher on an error.
//   - Nothing is registered in go-micro's command-line table at import time;
//     use Factory.
//   - etcdchain.NewRegistry's registry owns a chain and an etcd client:
//     close it when done (Close, or microservice.CloseOnStop for a go-micro
//     service).
//   - Choosing nodes (locality, failing nodes) and retries are the
//     client's: see package microplugin/microservice.
//
// # Files
//
//   - registry.go: Registry, New, the go-micro registry methods.
//   - owned.go: a backend the plugin owns (NewOwning, Close).
//   - mapping.go: ToInstances, FromInstances.
//   - readcache.go, readctx.go: the read path (a state's conversion, its
//     copies, the reads' shared deadline).
//   - watcher.go, diff.go: Watch, and snapshots diffed into go-micro Results.
//   - etcdcodec.go: EtcdCodec, the go-micro etcd plugin's record layout.
//   - slog.go: SlogHandler.
package microplugin
