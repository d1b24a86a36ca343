// Package consulinterop proves, with tests only, that regchain's Consul
// adapter (github.com/regchain/regchain/adapters/consul) and Kratos' contrib
// Consul registry (github.com/go-kratos/kratos/contrib/registry/consul/v2)
// share one agent: an instance either registers is found, equal to what it
// registered, by the other's GetService and Watch, and leaves both when
// deregistered.
//
// The tests live in the nested module github.com/regchain/regchain/interop
// because Kratos' contrib registries are published only as pseudo-versions
// the checksum database does not know: a test import of them in the root
// module would break `go mod tidy` for every module that imports regchain.
// They use only regchain's public API and a real agent from
// internal/testsupport/consultest (binary in $REGCHAIN_CONSUL).
package consulinterop
