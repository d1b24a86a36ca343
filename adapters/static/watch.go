package static

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if err := registry.ValidateWatch(name); err != nil {
		return nil, fmt.Errorf("static: watch: %w", err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, r.errClosed("watch")
	}
	f := registry.NewFeed(ctx, nil)
	r.hub.Add(f, name, registry.States(name, slices.Sorted(maps.Keys(r.services)), r.updateLocked)...)
	return f, nil
}
