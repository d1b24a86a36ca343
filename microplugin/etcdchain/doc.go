// Package etcdchain builds a go-micro v4 registry the way go-micro's etcd
// plugin is built, from go-micro's registry options, with regchain's
// chain behind it: an etcd backend in the go-micro plugin's record layout
// (microplugin.EtcdCodec) and a snapshot file.
//
//	reg := etcdchain.NewRegistry(registry.Addrs("10.0.0.1:2379"))
//	svc := micro.NewService(micro.Registry(reg), microservice.CloseOnStop())
//
// It lives apart from package microplugin so that a program serving
// another backend through microplugin (Consul, ZooKeeper, a chain of its
// own) links neither the etcd client, nor bbolt, nor Prometheus. Its name
// says what it builds: an etcd-backed chain.
//
// # Files
//
//   - etcdchain.go: NewRegistry and its options, the chain it builds on
//     first use and rebuilds when the options change, Chain,
//     DefaultSnapshotPath.
package etcdchain
