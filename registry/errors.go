package registry

import "errors"

// Errors returned by every Registry and Watcher. Implementations wrap them with
// context ("etcd: get \"foo\": registry: unavailable: dial tcp ..."), so check them
// with errors.Is.
var (
	// ErrNotFound is returned by GetService when the service has no instances
	// in the backend that answered. It is an answer, not a failure: the chain
	// does not move to another tier on it.
	ErrNotFound = errors.New("registry: service not found")

	// ErrUnavailable is returned when the backend could not be reached or did
	// not answer in time (network error, timeout, no leader, server down). It
	// is the ONLY error on which the chain moves to the next tier. A backend
	// must not return it for a write that may have taken effect unless
	// repeating that write is harmless (Register and Deregister are idempotent).
	ErrUnavailable = errors.New("registry: unavailable")

	// ErrInvalid is returned for bad input (an invalid service name or ID, an
	// endpoint that is not a URL, oversized metadata) and for stored values
	// that cannot be decoded. Nothing is written when a call returns it.
	ErrInvalid = errors.New("registry: invalid")

	// ErrClosed is returned by every method of a Registry after Close, and by
	// Next of its watchers (there together with ErrStopped).
	ErrClosed = errors.New("registry: closed")

	// ErrStopped is matched by every terminal error of Watcher.Next: after
	// Stop; after the context passed to Watch is done (together with the
	// context's error); after the registry's Close (together with ErrClosed).
	// A watch loop ends on errors.Is(err, ErrStopped) and on nothing else.
	ErrStopped = errors.New("registry: watcher stopped")
)
