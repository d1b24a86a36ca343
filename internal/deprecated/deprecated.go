// Package deprecated resolves a Config field that the adapters renamed to
// one set of names (Timeout, MaxBackoff, Namespace, Username, Client) and
// its old name, kept as a deprecated alias so that users' code keeps
// compiling and working.
package deprecated

import (
	"fmt"

	"github.com/regchain/regchain/registry"
)

// Alias returns the value of the field called name: cur when old is not
// set, else old (the value of the deprecated field oldName). Both set to
// different values is an error wrapping registry.ErrInvalid that names
// both; prefix starts the message ("zookeeper").
func Alias[T comparable](prefix, name string, cur T, oldName string, old T) (T, error) {
	var zero T
	switch {
	case old == zero:
		return cur, nil
	case cur == zero, cur == old:
		return old, nil
	}
	return zero, fmt.Errorf("%s: %w: %s and its deprecated name %s are both set, to different values: set %s only", prefix, registry.ErrInvalid, name, oldName, name)
}
