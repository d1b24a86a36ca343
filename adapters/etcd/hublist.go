package etcd

import (
	"context"
	"maps"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

// relist reads the services the hub holds, replaces the state with them
// and publishes every state that may have changed. It reads each one's
// prefix (all at one revision), or the whole namespace when a watch-all
// came or more than maxFetch are held. It returns the read's revision.
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
	// One read of the namespace, or of each wanted service's prefix when
	// there are few: all at one revision (the first read's).
	var rev int64
	read := 0
	add := func(kv *mvccpb.KeyValue) {
		read++
		if !all {
			if name, _, ok := h.r.splitKey(string(kv.Key)); ok {
				if _, ok := want[name]; !ok {
					return // a service nobody watches: not decoded
				}
			}
		}
		name, in, ok := h.r.decode(kv)
		if !ok {
			return
		}
		m := state[name]
		if m == nil {
			m = make(map[string]*registry.Instance)
			state[name] = m
		}
		m[string(kv.Key)] = in
	}
	switch {
	case all || len(want) > maxFetch:
		if err := h.listRange(h.r.ctx, h.prefix, &rev, add); err != nil {
			return 0, err
		}
	case len(want) == 0:
		// Nothing to hold (the watchers have gone): the revision alone,
		// from the one key that holds nothing.
		ctx, cancel := h.r.opCtx(h.r.ctx)
		resp, err := h.r.client.Get(ctx, h.prefix)
		cancel()
		if err != nil {
			return 0, h.r.wrapErr(context.Background(), "watch: list "+h.prefix, err)
		}
		h.r.observe(resp.Header)
		rev = resp.Header.Revision
	default:
		for name := range want {
			if err := h.listRange(h.r.ctx, h.r.servicePrefix(name), &rev, add); err != nil {
				return 0, err
			}
		}
	}
	for name := range want {
		if len(state[name]) == 0 {
			h.r.absent()
			break
		}
	}
	if all && len(state) == 0 {
		h.r.absent()
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	forget := h.stale
	h.stale = false
	old := h.state
	h.state, h.rev, h.synced = state, rev, true
	h.lists++
	h.listed += read
	h.held, h.allHeld, h.since = want, all, make(map[string]int64)
	if all {
		h.wantAll = false
		clear(h.pending) // every service is held now
	}
	for name := range want {
		delete(h.pending, name)
	}
	h.publishAllLocked(now, forget, old)
	return rev, nil
}

// listRange reads the keys under prefix at *rev (at the current revision
// when *rev is 0, which it then sets), in pages of listPage records each
// bounded by the request timeout: a large range is read however long it
// takes in all, as long as each page answers in time. Every record goes
// to add.
func (h *hub) listRange(ctx context.Context, prefix string, rev *int64, add func(*mvccpb.KeyValue)) error {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if *rev != 0 {
			opts = append(opts, clientv3.WithRev(*rev))
		}
		octx, cancel := h.r.opCtx(ctx)
		resp, err := h.r.client.Get(octx, from, opts...)
		cancel()
		if err != nil {
			return h.r.wrapErr(context.Background(), "watch: list "+prefix, err)
		}
		if *rev == 0 {
			h.r.observe(resp.Header)
			*rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			add(kv)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
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
