package file

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry. Watchers are fed in-process, in the
// order of the changes; Update.Revision is the file's revision counter.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if err := registry.ValidateWatch(name); err != nil {
		return nil, fmt.Errorf("file: watch: %w", err)
	}
	// The write lock makes subscribing and the first state atomic with
	// respect to changes, which publish under it too.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("file: watch %s: %w", registry.Quote(name), registry.ErrClosed)
	}
	f := registry.NewFeed(ctx, nil) // the hub forgets it when it ends
	r.hub.Add(f, name, registry.States(name, slices.Sorted(maps.Keys(r.services)), r.updateLocked)...)
	return f, nil
}
