// Package registry defines regchain's service-registry contract: the Instance
// record, the Registry and Watcher interfaces every backend implements, the
// Update a watcher delivers, small optional capability interfaces, the sentinel
// errors and the validation and JSON codec shared by every backend.
//
// The package imports only the standard library. Backends live in
// adapters/..., the fallback chain in chain/, and the conformance kit that holds
// every implementation to this contract in registry/registrytest.
//
// # Watch semantics
//
// A Watcher delivers full snapshots, never deltas: each Update carries the
// complete current instance set of one service. Identical consecutive states
// are dropped, a slow reader never blocks the backend (latest wins), and the
// first Next returns the current state at once, also when it is empty. A
// backend error does not freeze a watcher: the backend retries with capped
// backoff and Next reports the failure as a transient error, after which the
// watcher goes on. A watch-all hears of a service once it has instances, and
// from then on of every state, down to the empty one when its last instance
// leaves. Feed implements these rules for one watcher, and Hub fans states
// out to a backend's feeds under them.
//
// # Ownership
//
// Values passed in are copied; slices, maps and Instances returned belong to the
// caller, who may modify them freely.
//
// # Messages
//
// Errors quote input with Quote: at most MaxQuoteLen bytes of it, escaped,
// so that a hostile name, version or record can neither flood a log nor
// put escape sequences on a terminal. Clip, for log attributes, leaves a
// short printable value bare and quotes any other; Instance.String shows
// its parts through it.
//
// # Caveats
//
// Instance.Endpoints order carries no meaning: Equal compares them as sets, and
// backends may return them in a different order than registered. Update
// instances are sorted by ID.
//
// # Files
//
//   - registry.go: the contract (Registry, Watcher, Update) and the
//     capabilities readers and the chain use (Pinger, RegistrationReporter,
//     SnapshotStore, SharedReader, Notifier, Deriver).
//   - capability.go: the capabilities of writers and stores (Validator,
//     TTLRegistrar, LastGoodSaver).
//   - derive.go: Derive, StateMemo, Memo: values derived once per state.
//   - instance.go, clone.go: Instance, its comparison, order and copies.
//   - validate.go: validation and the JSON record codec.
//   - errors.go: the sentinel errors.
//   - feed.go: Feed and Hub, the fan-out of Updates to watchers.
//   - quote.go: Quote and Clip, values from outside in messages.
package registry
