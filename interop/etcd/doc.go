// Package etcdinterop proves, with tests only, that regchain's etcd adapter
// (github.com/regchain/regchain/adapters/etcd) and Kratos' contrib etcd
// registry (github.com/go-kratos/kratos/contrib/registry/etcd/v2) share one
// namespace: each sees what the other registers, and a record regchain
// writes is byte for byte the record Kratos writes.
//
// The tests live in the nested module github.com/regchain/regchain/interop
// because Kratos' contrib registries are published only as pseudo-versions
// the checksum database does not know: a test import of them in the root
// module would break `go mod tidy` for every module that imports regchain.
// They use only regchain's public API; the etcd key of an instance is the
// documented <namespace>/<name>/<id>.
package etcdinterop
