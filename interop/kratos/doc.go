// Package kratosinterop proves, with tests only, that Kratos apps
// registered through regchain's Kratos plugin
// (github.com/regchain/regchain/kratosplugin, over a chain over the etcd
// adapter) and apps registered by Kratos' contrib etcd registry
// (github.com/go-kratos/kratos/contrib/registry/etcd/v2) share one etcd
// namespace: clients of either kind reach apps of the other over gRPC and
// HTTP, and both return byte-identical records.
//
// The tests live in the nested module github.com/regchain/regchain/interop
// because Kratos' contrib registries are published only as pseudo-versions
// the checksum database does not know: a test import of them in the root
// module would break `go mod tidy` for every module that imports regchain.
// They use only regchain's public API.
package kratosinterop
