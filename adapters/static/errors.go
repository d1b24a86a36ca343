package static

import "errors"

// ErrReadOnly is returned by Register and Deregister, together with
// registry.ErrInvalid: the static tier is never written.
var ErrReadOnly = errors.New("static: read-only registry")
