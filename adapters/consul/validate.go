package consul

import "github.com/regchain/regchain/registry"

var _ registry.Validator = (*Registry)(nil)

// ValidateInstance implements registry.Validator: it returns an error
// wrapping registry.ErrInvalid when Register would refuse in (registry
// validation, or metadata that does not fit Consul's Meta limits even
// spilled), without I/O. The encoding reserves the instance-ID slot, so
// the answer does not depend on the Consul service ID Register picks.
func (r *Registry) ValidateInstance(in *registry.Instance) error {
	if err := registry.Validate(in); err != nil {
		return err
	}
	_, err := encode(in, in.ID)
	return err
}
