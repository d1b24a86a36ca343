package zk

import (
	"context"
	"fmt"
	"strings"
	"sync"

	gozk "github.com/go-zookeeper/zk"

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
	if name != "" {
		if err := registry.ValidateName(name); err != nil {
			return nil, fmt.Errorf("zookeeper: watch: %w", err)
		}
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

// subscription is one Watch: a feed and the service it watches ("" for all).
type subscription struct {
	name  string
	feed  *registry.Feed // set by subscribe; guarded by watchHub.mu until then
	ended bool           // guarded by watchHub.mu
}

// queued is a watch event of connection cs; gen is its service's event
// count (see watchHub.gens).
type queued struct {
	cs  *connState
	ev  gozk.Event
	gen uint64
}

// watchHub is the one goroutine that serves every watcher of a Registry. It
// keeps a cache of the watched services (their children, and each child's
// decoded data) and the ZooKeeper watches that keep it current: go-zookeeper's
// event callback queues each fired watch's event (by path), and the hub reads
// only what the events name -- a changed child's data, a service's children
// list -- so its work is linear in the changes, not in the instances. New
// children are read with up to parallelism requests in flight on the one
// connection. After a batch of events, each changed service's complete state
// is published once to its watchers.
//
// On a connection passed in Config.Conn there is no event callback: each
// armed watch's channel is forwarded by a small goroutine instead, which ends
// when the watch fires or the Registry closes.
type watchHub struct {
	r    *Registry
	wake chan struct{} // capacity 1

	mu      sync.Mutex // guards the fields below
	events  []queued
	added   []*subscription
	removed []*subscription
	cache
}

func newWatchHub(r *Registry) *watchHub {
	return &watchHub{r: r, wake: make(chan struct{}, 1), cache: newCache()}
}

// kick wakes the hub's goroutine.
func (h *watchHub) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// push queues a watch event of connection cs. It never blocks.
func (h *watchHub) push(cs *connState, ev gozk.Event) {
	svc, _, _ := h.r.classify(ev.Path)
	h.mu.Lock()
	var gen uint64
	if svc != "" {
		h.gens[svc]++
		gen = h.gens[svc]
		delete(h.current, svc)
	}
	h.events = append(h.events, queued{cs, ev, gen})
	h.mu.Unlock()
	h.kick()
}

func (h *watchHub) subscribe(sub *subscription, f *registry.Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sub.ended {
		return
	}
	sub.feed = f
	h.added = append(h.added, sub)
	h.kick()
}

func (h *watchHub) unsubscribe(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sub.ended = true
	if sub.feed != nil {
		h.removed = append(h.removed, sub)
		h.kick()
	}
}

// take returns and clears what was queued.
func (h *watchHub) take() (evs []queued, added, removed []*subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	evs, added, removed = h.events, h.added, h.removed
	h.events, h.added, h.removed = nil, nil, nil
	return evs, added, removed
}

// forward turns a watch channel of a connection without event callback into
// a queued event.
func (h *watchHub) forward(cs *connState, ch <-chan gozk.Event) {
	if cs.owned || ch == nil {
		return
	}
	r := h.r
	r.wg.Add(1) // called by the hub's goroutine, which is in wg
	go func() {
		defer r.wg.Done()
		select {
		case ev, ok := <-ch:
			if ok {
				h.push(cs, ev)
			}
		case <-r.ctx.Done():
		}
	}()
}

// classify splits a path under the root into service and instance ID
// ("", "" for the root itself); ok is false for any other path.
func (r *Registry) classify(path string) (svc, id string, ok bool) {
	if path == r.root {
		return "", "", true
	}
	rest, found := strings.CutPrefix(path, r.root+"/")
	if !found || rest == "" {
		return "", "", false
	}
	svc, id, _ = strings.Cut(rest, "/")
	if strings.Contains(id, "/") {
		return "", "", false
	}
	return svc, id, true
}
