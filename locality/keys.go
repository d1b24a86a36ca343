package locality

import (
	"os"

	"github.com/regchain/regchain/registry"
)

// Metadata keys and environment variables; see the package doc for why
// these names.
const (
	// KeyZone is the instance metadata key holding its zone.
	KeyZone = "zone"
	// KeyRegion is the instance metadata key holding its region.
	KeyRegion = "region"
	// EnvZone names the environment variable Wrap reads the process's zone
	// from when Config.Self.Zone is empty.
	EnvZone = "REGCHAIN_ZONE"
	// EnvRegion names the environment variable Wrap reads the process's
	// region from when Config.Self.Region is empty.
	EnvRegion = "REGCHAIN_REGION"
)

// Locality is a place: a zone within a region. Either may be empty
// (unknown).
type Locality struct {
	Zone   string
	Region string
}

// FromEnv returns the locality of REGCHAIN_ZONE and REGCHAIN_REGION.
func FromEnv() Locality {
	return Locality{Zone: os.Getenv(EnvZone), Region: os.Getenv(EnvRegion)}
}

// Of returns the locality an instance carries in its metadata.
func Of(in *registry.Instance) Locality {
	if in == nil {
		return Locality{}
	}
	return Locality{Zone: in.Metadata[KeyZone], Region: in.Metadata[KeyRegion]}
}

// OrEnv returns l with its empty fields read from REGCHAIN_ZONE and
// REGCHAIN_REGION: the place every door and the wrapper assume when the
// configuration leaves a field empty.
func (l Locality) OrEnv() Locality {
	env := FromEnv()
	if l.Zone == "" {
		l.Zone = env.Zone
	}
	if l.Region == "" {
		l.Region = env.Region
	}
	return l
}

// Stamp returns in with l's zone and region added to its metadata where it
// has none; keys already present are kept. in is not modified: when a key is
// added the result is a copy, else it is in itself.
func Stamp(in *registry.Instance, l Locality) *registry.Instance {
	if in == nil {
		return nil
	}
	needZone := l.Zone != "" && in.Metadata[KeyZone] == ""
	needRegion := l.Region != "" && in.Metadata[KeyRegion] == ""
	if !needZone && !needRegion {
		return in
	}
	out := in.Clone()
	if out.Metadata == nil {
		out.Metadata = make(map[string]string, 2)
	}
	if needZone {
		out.Metadata[KeyZone] = l.Zone
	}
	if needRegion {
		out.Metadata[KeyRegion] = l.Region
	}
	return out
}
