package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

var (
	errWatchClosed = errors.New("watch channel closed")
	errConnLost    = errors.New("connection to etcd lost")
)

// Watch implements registry.Registry. It returns at once; a goroutine lists
// the service (or, for name "", the whole namespace, grouped by service),
// publishes that state, then follows an etcd watch from the next revision
// with WithRequireLeader and WithProgressNotify, keeping the state in
// memory and publishing the service's complete instance set after each
// batch of events. When the watch fails (compaction, lost leader, closed
// stream) or the client's connection to etcd is lost (clientv3 itself
// would wait for etcd silently), it lists again after a backoff, publishes
// the listed state if it differs, and resumes from the list's revision.
// Failures other than compaction are reported once by Next as transient
// errors (wrapping ErrUnavailable when etcd is unreachable or has no
// leader); the watcher goes on, and the first state listed after such an
// error is delivered even if unchanged, to confirm it. Update.Revision is
// the etcd revision of the state.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	prefix := r.ns + "/"
	if name != "" {
		if err := registry.ValidateName(name); err != nil {
			return nil, fmt.Errorf("etcd: watch: %w", err)
		}
		prefix = r.servicePrefix(name)
	}
	wctx, cancel := context.WithCancel(r.ctx)
	w := &watcher{
		r:        r,
		name:     name,
		prefix:   prefix,
		ctx:      wctx,
		lost:     make(chan struct{}, 1),
		services: make(map[string]map[string]*registry.Instance),
	}
	// Ending the feed (Stop, ctx, Close) ends run, which unlists the feed.
	w.feed = registry.NewFeed(ctx, cancel)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		w.feed.End(r.errClosed("watch"))
		return nil, r.errClosed("watch")
	}
	r.feeds[w.feed] = w
	r.wg.Add(1)
	r.mu.Unlock()
	go w.run()
	return w.feed, nil
}

// watcher follows one prefix. Its fields after feed are owned by run.
type watcher struct {
	r      *Registry
	name   string // "" for every service
	prefix string
	ctx    context.Context // ends with the feed or the registry
	feed   *registry.Feed
	lost   chan struct{} // capacity 1: the client's connection was lost

	// stale says an error was reported since the last state: the next list
	// delivers its state even if unchanged, to confirm it.
	stale bool

	// services holds the current state: service -> etcd key -> instance.
	// Instances are never modified once stored, so published Updates may
	// share them.
	services map[string]map[string]*registry.Instance
}

func (w *watcher) run() {
	defer w.r.wg.Done()
	defer func() {
		w.r.mu.Lock()
		delete(w.r.feeds, w.feed)
		w.r.mu.Unlock()
	}()
	bo := backoff.Backoff{Base: 100 * time.Millisecond, Max: w.r.maxBackoff}
	for {
		rev, err := w.relist()
		if err != nil {
			if w.ctx.Err() != nil {
				return
			}
			w.r.log.Debug("etcd: watch list failed; will retry", "prefix", w.prefix, "error", err)
			w.fail(err)
			if !w.sleep(bo.Next()) {
				return
			}
			continue
		}
		progressed, err := w.follow(rev)
		if w.ctx.Err() != nil {
			return
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			w.r.log.Info("etcd: watch revision compacted; listing again", "prefix", w.prefix, "revision", rev)
		} else {
			w.r.log.Warn("etcd: watch failed; listing again", "prefix", w.prefix, "error", err)
			w.fail(w.r.wrapErr(nil, "watch "+w.prefix, err))
		}
		if progressed {
			// It worked for a while: resume at once.
			bo.Reset()
			continue
		}
		if !w.sleep(bo.Next()) {
			return
		}
	}
}

// fail reports a transient error; the next list confirms its state.
func (w *watcher) fail(err error) {
	w.stale = true
	w.feed.Fail(err)
}

// sleep waits d; false when the watcher ended first.
func (w *watcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// relist reads the prefix, replaces the state with it and publishes every
// service whose state may have changed. It returns the read's revision.
func (w *watcher) relist() (int64, error) {
	select {
	case <-w.lost: // a loss before this read: the read tells
	default:
	}
	ctx, cancel := w.r.opCtx(w.ctx)
	defer cancel()
	resp, err := w.r.client.Get(ctx, w.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, w.r.wrapErr(nil, "watch: list "+w.prefix, err)
	}
	old := w.services
	w.services = make(map[string]map[string]*registry.Instance, len(old))
	for _, kv := range resp.Kvs {
		name, in, ok := w.r.decode(kv)
		if !ok || !w.wants(in.Name) {
			continue
		}
		m := w.services[name]
		if m == nil {
			m = make(map[string]*registry.Instance)
			w.services[name] = m
		}
		m[string(kv.Key)] = in
	}
	rev := resp.Header.Revision
	now := time.Now()
	if w.stale {
		// After an error the consumer hears the state confirmed.
		w.stale = false
		for name := range w.services {
			w.feed.Forget(name)
		}
		if w.name != "" {
			w.feed.Forget(w.name)
		}
	}
	if w.name != "" {
		w.publish(w.name, rev, now) // even when empty: the first Next needs it
		return rev, nil
	}
	for name := range w.services {
		w.publish(name, rev, now)
	}
	for name := range old {
		if _, ok := w.services[name]; !ok {
			w.publish(name, rev, now)
		}
	}
	return rev, nil
}

func (w *watcher) wants(name string) bool { return w.name == "" || name == w.name }

// follow watches from rev+1 and applies events until the watch fails, the
// client's connection is lost or the watcher ends. progressed says whether
// any response arrived.
func (w *watcher) follow(rev int64) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(w.ctx))
	defer cancel()
	// A lost connection ends the watch, even while clientv3's Watch is still
	// waiting for its stream: clientv3 would wait for etcd silently.
	var lost atomic.Bool
	followDone, helperDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(helperDone)
		select {
		case <-w.lost:
			lost.Store(true)
			cancel()
		case <-followDone:
		}
	}()
	defer func() {
		close(followDone)
		<-helperDone
	}()
	wch := w.r.client.Watch(ctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	changed := make(map[string]struct{})
	for resp := range wch {
		if lost.Load() {
			break
		}
		if err := resp.Err(); err != nil {
			return progressed, err
		}
		progressed = true
		if len(resp.Events) == 0 {
			continue // progress notification: nothing changed
		}
		for _, ev := range resp.Events {
			if name, ok := w.apply(ev); ok {
				changed[name] = struct{}{}
			}
		}
		now := time.Now()
		for name := range changed {
			w.publish(name, resp.Header.Revision, now)
			delete(changed, name)
		}
	}
	if err := w.ctx.Err(); err != nil {
		return progressed, err
	}
	if lost.Load() {
		return progressed, errConnLost
	}
	return progressed, errWatchClosed
}

// apply updates the state with one event and returns the service it
// touched. A put of a malformed record removes what the key held: it no
// longer describes a valid instance.
func (w *watcher) apply(ev *clientv3.Event) (string, bool) {
	key := string(ev.Kv.Key)
	var name string
	var in *registry.Instance
	if ev.Type == mvccpb.PUT {
		var ok bool
		name, in, ok = w.r.decode(ev.Kv)
		if name == "" {
			return "", false
		}
		if !ok {
			in = nil
		}
	} else {
		var ok bool
		name, _, ok = w.r.splitKey(key)
		if !ok {
			return "", false
		}
	}
	if !w.wants(name) {
		return "", false
	}
	m := w.services[name]
	if in == nil {
		if _, ok := m[key]; !ok {
			return "", false
		}
		delete(m, key)
		return name, true
	}
	if m == nil {
		m = make(map[string]*registry.Instance)
		w.services[name] = m
	}
	m[key] = in
	return name, true
}

// publish hands the service's current set to the feed. A watch-all forgets
// services that became empty once that is published.
func (w *watcher) publish(name string, rev int64, now time.Time) {
	m := w.services[name]
	list := make([]*registry.Instance, 0, len(m))
	for _, in := range m {
		list = append(list, in)
	}
	if len(m) == 0 {
		delete(w.services, name)
	}
	w.feed.Publish(&registry.Update{
		Service:   name,
		Instances: list,
		Source:    Source,
		Revision:  rev,
		Time:      now,
	})
}
