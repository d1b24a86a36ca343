package zk

import (
	"context"
	"fmt"

	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry. Every watcher of a Registry is served
// by one goroutine, its watch hub (see watchHub), whatever the number of
// watchers and services: the hub keeps a children watch on each watched
// service node (an exists watch while that node is missing) and a data watch
// on each of its instance nodes, shared by all the watchers of that service;
// a watch-all (name "") also watches the children of the root. Each fired
// watch costs one read of what changed. Update.Revision is the highest zxid
// seen for the service (the service node's Pzxid, its instances' Mzxid).
//
// A lost connection is reported by Next as a transient error wrapping
// registry.ErrUnavailable; once the session is back the state is read
// again and delivered even if unchanged. Failed reads are retried with
// capped backoff.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if err := registry.ValidateWatch(name); err != nil {
		return nil, fmt.Errorf("zookeeper: watch: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("zookeeper: watch %s: %w", registry.Quote(name), registry.ErrClosed)
	}
	sub := &subscription{name: name}
	f := registry.NewFeed(ctx, func() { r.hub.unsubscribe(sub) })
	r.feeds.Add(f, name)
	r.hub.subscribe(sub, f)
	return f, nil
}
