// Package registrytest is the conformance kit of regchain: Run holds any
// registry.Registry to the contract of package registry, in the spirit of
// testing/slogtest. Every backend, the chain and the plugins' underlying
// registries run it against real servers.
//
// It also holds Memory, the in-memory reference registry that passes the kit,
// with a switch to simulate outages.
//
// # Caveats
//
// The kit waits for states with a timeout (Timeout, 30s) rather than
// assuming read-your-writes, so eventually consistent backends pass; it
// never sleeps to make a test pass. The factory is called once per subtest
// and must return a registry whose view is not disturbed by the others (a
// fresh namespace on a shared server is enough); the kit closes it.
//
// # Files
//
//   - kit.go: Run and the cases of the contract; derive.go, notify.go,
//     ttl.go: the cases of Derive and Memo, Notifier and TTLRegistrar.
//   - readonly.go: RunReadOnly, for read-only registries.
//   - history.go: RunHistory, a keepalive registry whose server comes back
//     wiped or restored from a backup.
//   - memory.go: Memory, the in-memory reference registry.
package registrytest
