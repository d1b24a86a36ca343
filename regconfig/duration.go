package regconfig

import (
	"fmt"
	"time"

	"github.com/regchain/regchain/registry"
)

// Duration is a time.Duration written as a Go duration string ("15s",
// "1m30s") in JSON, YAML and the compact string. The zero value means "use
// the default".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; JSON and YAML
// decoders use it.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%s is not a duration (want e.g. 15s, 1m30s)", registry.Quote(string(b)))
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
