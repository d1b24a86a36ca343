package registry

import (
	"context"
	"time"
)

// LastGoodSaver is implemented by snapshot stores that keep, per service,
// the last known good (non-empty) state beside the current one, so that an
// operator can go back to it after an empty state was accepted. The chain
// uses it instead of SnapshotStore.SaveSnapshot when the store has it.
type LastGoodSaver interface {
	// SaveSnapshotEntries stores each entry's Update and LastGood (nil:
	// the Update is the last good state, or there is none), replacing
	// earlier entries of the same services, in one atomic transaction. The
	// entries' Saved is set by the store.
	SaveSnapshotEntries(ctx context.Context, entries []SnapshotEntry) error
}

// Validator is implemented by registries whose backend refuses some
// instances that Validate accepts (Consul's Meta limits, say).
// ValidateInstance returns an error wrapping ErrInvalid when Register would
// refuse in, nil otherwise; it does no I/O. The chain checks every writable
// tier with it before writing anything, so that ErrInvalid from the chain
// still means nothing was written.
type Validator interface {
	ValidateInstance(in *Instance) error
}

// TTLRegistrar is implemented by registries whose records can carry a time
// to live of their own instead of the registry's configured one: the etcd
// adapter (the lease TTL) and the Consul adapter (the check TTL). The mirror
// uses it for its Config.TTL. ZooKeeper's records live as long as the
// client's session, whose timeout is the client's, and a file has no TTL:
// those adapters do not implement it.
type TTLRegistrar interface {
	// RegisterTTL is Register with ttl as the record's time to live: once
	// its keepalive stops (the registry closed, the process gone), the
	// record disappears ttl later at most (plus the backend's own
	// granularity). ttl <= 0 means the registry's default. A backend may
	// raise ttl to its minimum, or refuse it with ErrInvalid (nothing
	// written). An instance already registered keeps the TTL it was first
	// registered with: registering it again (either way) updates its data
	// only.
	RegisterTTL(ctx context.Context, in *Instance, ttl time.Duration) error
}
