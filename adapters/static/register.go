package static

import (
	"context"
	"fmt"

	"github.com/regchain/regchain/registry"
)

// Register implements registry.Registry: it returns ErrReadOnly.
func (r *Registry) Register(_ context.Context, in *registry.Instance) error {
	return r.write("register", in)
}

// Deregister implements registry.Registry: it returns ErrReadOnly.
func (r *Registry) Deregister(_ context.Context, in *registry.Instance) error {
	return r.write("deregister", in)
}

func (r *Registry) write(op string, in *registry.Instance) error {
	r.mu.RLock()
	closed := r.closed
	r.mu.RUnlock()
	if closed {
		return r.errClosed(op)
	}
	if op == "register" {
		if err := registry.Validate(in); err != nil {
			return fmt.Errorf("static: %s: %w", op, err)
		}
	} else if err := registry.ValidateKey(in); err != nil {
		return fmt.Errorf("static: %s: %w", op, err)
	}
	return fmt.Errorf("static: %s %s: %w: %w", op, in.Key(), registry.ErrInvalid, ErrReadOnly)
}
