package etcd

import (
	"context"
	"maps"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

// relist reads the namespace, replaces the state with it and publishes
// every state that may have changed. It returns the read's revision.
func (h *hub) relist() (int64, error) {
	select {
	case <-h.lost: // a loss before this read: the read tells
	default:
	}
	// The services to hold: those held or pending now (all of them once a
	// watch-all came). Services watched during the list are fetched after.
	h.mu.Lock()
	all := h.allHeld || h.wantAll
	want := make(map[string]struct{}, len(h.held)+len(h.pending))
	for name := range h.held {
		want[name] = struct{}{}
	}
	for name := range h.pending {
		want[name] = struct{}{}
	}
	h.mu.Unlock()
	state := make(map[string]map[string]*registry.Instance)
	// Pages of listPage records at one revision, each bounded by the
	// request timeout: a large namespace is listed however long it takes
	// in all, as long as each page answers in time.
	var rev int64
	from, end := h.prefix, clientv3.GetPrefixRangeEnd(h.prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		ctx, cancel := h.r.opCtx(h.r.ctx)
		resp, err := h.r.client.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return 0, h.r.wrapErr(context.Background(), "watch: list "+h.prefix, err)
		}
		if rev == 0 {
			h.r.observe(resp.Header)
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if !all {
				if name, _, ok := h.r.splitKey(string(kv.Key)); ok {
					if _, ok := want[name]; !ok {
						continue // a service nobody watches: not decoded
					}
				}
			}
			name, in, ok := h.r.decode(kv)
			if !ok {
				continue
			}
			m := state[name]
			if m == nil {
				m = make(map[string]*registry.Instance)
				state[name] = m
			}
			m[string(kv.Key)] = in
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	forget := h.stale
	h.stale = false
	old := h.state
	h.state, h.rev, h.synced = state, rev, true
	h.lists++
	h.held, h.allHeld, h.since = want, all, make(map[string]int64)
	if all {
		h.wantAll = false
	}
	for name := range want {
		delete(h.pending, name)
	}
	h.publishAllLocked(now, forget, old)
	return rev, nil
}

// publishAllLocked delivers every subscribed service's state, and to the
// watch-alls every service's, including those only in old (a previous
// state, whose services may have gone). forget makes the feeds deliver
// states even if unchanged, to confirm them after a reported failure.
func (h *hub) publishAllLocked(now time.Time, forget bool, old map[string]map[string]*registry.Instance) {
	for name, m := range h.subs {
		if name == "" || !h.holdsLocked(name) {
			continue // not held: gets its first state when fetched
		}
		u := h.updateLocked(name, now)
		for f := range m {
			if forget {
				f.Forget(name)
			}
			f.Publish(cloneUpdate(u))
		}
	}
	if all := h.subs[""]; len(all) > 0 && h.allHeld {
		names := make(map[string]struct{}, len(h.state)+len(old))
		for name := range h.state {
			names[name] = struct{}{}
		}
		for name := range old {
			names[name] = struct{}{}
		}
		for name := range names {
			u := h.updateLocked(name, now)
			for f := range all {
				if forget {
					f.Forget(name)
				}
				f.Publish(cloneUpdate(u))
			}
		}
	}
}

// updateLocked returns the current Update of a service; its Instances are
// sorted (Feed.Publish sorts in place: give each feed its own clone).
func (h *hub) updateLocked(name string, now time.Time) *registry.Update {
	m := h.state[name]
	list := slices.Collect(maps.Values(m))
	registry.SortInstances(list)
	return &registry.Update{Service: name, Instances: list, Source: Source, Revision: h.rev, Time: now}
}

func cloneUpdate(u *registry.Update) *registry.Update {
	c := *u
	c.Instances = slices.Clone(u.Instances)
	return &c
}

// applyLocked updates the state with one event; it reports whether the
// service's state changed.
func (h *hub) applyLocked(key, name string, in *registry.Instance) bool {
	m := h.state[name]
	if in == nil {
		if _, ok := m[key]; !ok {
			return false
		}
		delete(m, key)
		return true
	}
	if m == nil {
		m = make(map[string]*registry.Instance)
		h.state[name] = m
	}
	m[key] = in
	return true
}

// publishLocked hands the service's current set to its feeds and the
// watch-alls. A service that became empty is forgotten once published.
func (h *hub) publishLocked(name string, now time.Time) {
	one, all := h.subs[name], h.subs[""]
	if len(one)+len(all) > 0 {
		u := h.updateLocked(name, now)
		for f := range one {
			f.Publish(cloneUpdate(u))
		}
		for f := range all {
			f.Publish(cloneUpdate(u))
		}
	}
	if len(h.state[name]) == 0 {
		delete(h.state, name)
	}
}
