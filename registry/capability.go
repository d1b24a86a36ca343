package registry

import "context"

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
