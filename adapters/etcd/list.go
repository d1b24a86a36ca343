package etcd

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

// listPage is how many records one request of a list reads.
const listPage = 5000

// lister reads the namespace for the watch and hands what it read to the
// hub: a list of the held services (or of the whole namespace), a new
// watcher's service read alone, and the confirmation of the states after
// the connection came back. Its methods run on the follower's goroutine.
type lister struct {
	c   *conn
	rec *records
	h   *hub
}

// relist reads the services the hub holds, replaces the store's state with
// them and publishes every state that may have changed. It reads each one's
// prefix (all at one revision), or the whole namespace when a watch-all
// came or more than maxFetch are held. It returns the read's revision.
func (l *lister) relist() (int64, error) {
	select {
	case <-l.h.lost: // a loss before this read: the read tells
	default:
	}
	// The services to hold: those held or pending now (all of them once a
	// watch-all came). Services watched during the list are fetched after.
	all, want := l.h.wanted()
	state := make(map[string]map[string]*registry.Instance)
	// One read of the namespace, or of each wanted service's prefix when
	// there are few: all at one revision (the first read's).
	var rev int64
	read := 0
	add := func(kv *mvccpb.KeyValue) {
		read++
		if !all {
			if name, _, ok := l.rec.splitKey(string(kv.Key)); ok {
				if _, ok := want[name]; !ok {
					return // a service nobody watches: not decoded
				}
			}
		}
		name, in, ok := l.rec.decode(kv)
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
	var err error
	switch {
	case all || len(want) > maxFetch:
		err = l.listRange(l.c.ctx, l.h.prefix, &rev, add)
	case len(want) == 0:
		// Nothing to hold (the watchers have gone): the revision alone,
		// from the one key that holds nothing.
		rev, err = l.revision()
	default:
		for name := range want {
			if err = l.listRange(l.c.ctx, l.rec.servicePrefix(name), &rev, add); err != nil {
				break
			}
		}
	}
	if err != nil {
		return 0, err
	}
	for name := range want {
		if len(state[name]) == 0 {
			l.rec.absent()
			break
		}
	}
	if all && len(state) == 0 {
		l.rec.absent()
	}
	l.h.relisted(state, rev, all, want, read)
	return rev, nil
}

// revision reads etcd's current revision from the one key under the prefix
// that holds nothing.
func (l *lister) revision() (int64, error) {
	ctx, cancel := l.c.opCtx(l.c.ctx)
	resp, err := l.c.client.Get(ctx, l.h.prefix)
	cancel()
	if err != nil {
		return 0, l.c.wrapErr(context.Background(), "watch: list "+l.h.prefix, err)
	}
	l.c.observe(resp.Header)
	return resp.Header.Revision, nil
}

// listRange reads the keys under prefix at *rev (at the current revision
// when *rev is 0, which it then sets), in pages of listPage records each
// bounded by the request timeout: a large range is read however long it
// takes in all, as long as each page answers in time. Every record goes
// to add.
func (l *lister) listRange(ctx context.Context, prefix string, rev *int64, add func(*mvccpb.KeyValue)) error {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if *rev != 0 {
			opts = append(opts, clientv3.WithRev(*rev))
		}
		octx, cancel := l.c.opCtx(ctx)
		resp, err := l.c.client.Get(octx, from, opts...)
		cancel()
		if err != nil {
			return l.c.wrapErr(context.Background(), "watch: list "+prefix, err)
		}
		if *rev == 0 {
			l.c.observe(resp.Header)
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

// readService reads service name's keys (linearizable ranges over its
// prefix, in pages, at one revision R) and makes the store hold exactly
// them: the service is held from then on, and its events up to R are
// skipped, since those already received were committed before the read and
// R covers them. It runs between two watch responses.
func (l *lister) readService(ctx context.Context, name string) error {
	var rev int64
	m := make(map[string]*registry.Instance)
	// Paged like a list: a large service is read however long it takes.
	err := l.listRange(ctx, l.rec.servicePrefix(name), &rev, func(kv *mvccpb.KeyValue) {
		if _, in, ok := l.rec.decode(kv); ok {
			m[string(kv.Key)] = in
		}
	})
	if err != nil {
		return err
	}
	l.h.readAlone(name, m, rev)
	return nil
}

// fetchPending gives the watchers of services the hub does not hold yet
// their first states: each one is read alone (readService) between two
// watch responses. A failed read fails the service's feeds (etcd is
// unreachable, say) and leaves it pending for the next fetch or list. It
// returns errResync when a list is due instead.
func (l *lister) fetchPending(ctx context.Context) error {
	names, resync := l.h.toFetch()
	if resync {
		return errResync
	}
	var failed bool
	for _, name := range names {
		if err := l.readService(ctx, name); err != nil {
			if ctx.Err() != nil {
				return nil // follow is ending
			}
			l.h.failService(name, err)
			failed = true
			continue
		}
		if l.h.fetched(name) {
			l.rec.absent()
		}
	}
	if failed {
		// Try again later: the connection's return, or the next watcher.
		l.c.spawn(func() {
			select {
			case <-ctx.Done():
				return
			case <-l.c.reconnected.Wait():
			case <-time.After(time.Second):
			}
			poke(l.h.fetch)
		})
	}
	return nil
}

// recover confirms the states after the connection came back, when etcd
// shows they are current: the store is still at applied (nothing was
// written anywhere since the last event applied), or else each held
// service has been read again (readService: its events up to the read are
// then skipped). The read also goes to the history check, and a suspected
// or changed history is never taken for "still at applied". Either way
// the states are published again, unchanged ones included, unless another
// loss was reported meanwhile (then the next reconnection confirms). It
// reports whether that is done; errResync asks for a list instead (a
// watch-all, or more than maxFetch services held), errHistoryChanged for
// a list of the new history.
func (l *lister) recover(ctx context.Context, applied int64, hist <-chan struct{}) (bool, error) {
	epoch := l.h.epoch()
	cctx, cancel := l.c.opCtx(ctx)
	resp, err := l.c.client.Get(cctx, l.h.prefix)
	cancel()
	if err != nil {
		return false, nil
	}
	v := l.c.observe(resp.Header)
	select {
	case <-hist:
		return false, errHistoryChanged
	default:
	}
	if v != same || resp.Header.Revision != applied {
		all, names := l.h.heldNames()
		if all || len(names) > maxFetch {
			return false, errResync
		}
		for _, name := range names {
			if err := l.readService(ctx, name); err != nil {
				return false, nil
			}
		}
	}
	if !l.h.confirm(epoch) {
		return false, nil
	}
	l.c.log.Debug("etcd: states confirmed after the connection came back", "prefix", l.h.prefix, "revision", resp.Header.Revision, "still", resp.Header.Revision == applied)
	return true, nil
}
