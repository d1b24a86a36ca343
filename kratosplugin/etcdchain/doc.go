// Package etcdchain is the constructor Kratos users know from the contrib
// etcd registry, New(client, opts...), with regchain's chain behind it: a
// kratosplugin.Registry over a chain of that etcd client (records in the
// contrib layout, so contrib and regchain apps see each other) and, with
// Snapshot, a snapshot file.
//
//	r, err := etcdchain.New(client, etcdchain.Snapshot("/var/lib/app/registry.snapshot"))
//	app := kratos.New(kratos.Registrar(r))
//
// It lives apart from package kratosplugin so that a Kratos app on
// another backend (Consul, ZooKeeper, a chain of its own) links neither
// the etcd client, nor bbolt, nor Prometheus. Its name says what it
// builds: an etcd-backed chain.
//
// # Files
//
//   - etcdchain.go: New, its options, Registry and Close.
package etcdchain
