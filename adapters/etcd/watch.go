package etcd

import (
	"context"
	"fmt"

	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry. It returns at once. Every watcher of
// a registry is fed by one etcd watch over the whole namespace (see hub):
// watching N services costs one etcd watch and one goroutine, not N. The
// first Next returns the service's current state (for name "", one Update
// per service that has instances); later ones the complete instance set of
// the service after each change. When the shared watch fails (compaction,
// lost leader, closed stream) or etcd comes back with another history, the
// namespace is listed again and every watcher gets the states that differ.
// When the client's connection to etcd is lost (clientv3 itself would wait
// for etcd silently), Next reports it at once; the watch resumes with the
// connection, delivers what changed meanwhile, and once etcd shows it has
// caught up every state is delivered again, without listing the namespace
// (see follower.follow). Failures other than compaction and a history change
// are reported once by Next as transient errors (wrapping ErrUnavailable
// when etcd is unreachable or has no leader); the watcher goes on, and the
// first state listed or confirmed after such an error is delivered even if
// unchanged. Update.Revision is the etcd revision of the state.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if err := registry.ValidateWatch(name); err != nil {
		return nil, fmt.Errorf("etcd: watch: %w", err)
	}
	if r.isClosed() {
		return nil, r.c.errClosed("watch")
	}
	f, start, err := r.hub.subscribe(ctx, name)
	if err != nil {
		return nil, err
	}
	if start {
		r.c.spawn(newFollower(r.c, r.hub, r.rec).run) // refused only when closing, which ends f
	}
	return f, nil
}
