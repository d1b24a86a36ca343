// Package redact formats the types that hold a secret (a password, a
// token) so that no fmt verb and no slog handler prints it: each such type
// implements fmt.Formatter and slog.LogValuer with the helpers here, over
// a copy of itself whose secrets are masked and whose type has no methods.
package redact

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Mask replaces a secret that is set.
const Mask = "REDACTED"

// Secret returns Mask for a set secret, "" for an unset one (so that the
// output still says whether it is set).
func Secret(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}

// Format writes masked (a copy of the value with its secrets masked, of a
// type without methods) with f's verb and flags: %v, %+v, %#v and every
// other verb print the fields, none of them a secret.
func Format(f fmt.State, verb rune, masked any) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), masked)
}

// FormatShort is Format for a type with a short form without secrets
// (its String): %v and %s print short, %q quotes it, and the other verbs
// and flags (%+v, %#v, %d, ...) print masked.
func FormatShort(f fmt.State, verb rune, short string, masked any) {
	switch {
	case verb == 'q':
		io.WriteString(f, strconv.Quote(short))
	case (verb == 'v' || verb == 's') && !f.Flag('+') && !f.Flag('#'):
		io.WriteString(f, short)
	default:
		Format(f, verb, masked)
	}
}

// LogValue is the slog value of a type that holds a secret: its masked
// copy printed with %+v, as a string (slog's JSON handler would otherwise
// marshal the fields of the value itself).
func LogValue(masked any) slog.Value {
	return slog.StringValue(fmt.Sprintf("%+v", masked))
}
