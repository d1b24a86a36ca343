package zk

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// Watch implements registry.Registry. A service watcher sets a children
// watch on <root>/<name> (an exists watch while that node is missing) and a
// data watch on each instance node, so added, removed and updated instances
// are all seen; each watch is re-armed after it fires. A watch-all (name "")
// also watches the children of the root. Update.Revision is the highest zxid
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
		return nil, fmt.Errorf("zookeeper: watch %q: %w", name, registry.ErrClosed)
	}
	wctx, cancel := context.WithCancel(r.ctx)
	f := registry.NewFeed(ctx, cancel)
	r.feeds.Add(f, name)
	w := &watcher{r: r, feed: f, ctx: wctx, name: name, all: name == "", svcs: make(map[string]*svcState)}
	if !w.all {
		w.svcs[name] = &svcState{name: name}
	}
	r.wg.Add(1)
	go w.run()
	return f, nil
}

// watcher is the goroutine behind one Watch. Its fields belong to it.
type watcher struct {
	r    *Registry
	feed *registry.Feed
	ctx  context.Context // done when the feed ends or the Registry closes
	name string          // "" for a watch-all
	all  bool

	rootList  <-chan gozk.Event // watch-all: children watch on the root
	rootExist <-chan gozk.Event // watch-all: exists watch while the root is missing
	svcs      map[string]*svcState
	gone      []string // watch-all: services that disappeared, to publish empty
	lost      bool     // the connection loss was reported; confirm everything once back
}

// svcState is what a watcher knows of one service.
type svcState struct {
	name   string
	list   <-chan gozk.Event // children watch on the service node
	exist  <-chan gozk.Event // exists watch while the service node is missing
	pzxid  int64
	kids   map[string]*kid // by instance ID
	dirty  bool            // changed since last published
	shown  bool            // the last published state had instances
	stale  bool            // an error was reported: deliver the state again once read
	failed bool            // the last read failed: its state is incomplete
}

// kid is one instance node.
type kid struct {
	in    *registry.Instance // nil if its data is malformed
	mzxid int64
	watch <-chan gozk.Event // data watch; nil when the node must be read again
}

func (w *watcher) run() {
	r := w.r
	defer r.wg.Done()
	defer func() {
		if r.ctx.Err() != nil {
			w.feed.End(registry.ErrClosed)
		}
		r.feeds.Remove(w.feed)
	}()
	b := backoff.Backoff{Max: r.cfg.MaxRetryDelay}
	for {
		err := w.sync()
		if w.ctx.Err() != nil {
			return
		}
		w.publish() // what was read completely, even if other services failed
		if err != nil {
			w.feed.Fail(r.fail(fmt.Sprintf("watch %q", w.name), err))
			d := b.Next()
			r.log.Warn("zookeeper: watch read failed", "service", w.name, "attempt", b.Attempts(), "retry_in", d, "err", err)
			if !w.wait(d) {
				return
			}
			continue
		}
		b.Reset()
		if !w.wait(0) {
			return
		}
	}
}

// markStale makes the next publish deliver every state again, even if
// unchanged: after a reported error the consumer must hear it confirmed.
func (w *watcher) markStale() {
	for _, s := range w.svcs {
		s.stale = true
	}
}

// call runs f through Registry.do, bounded by Config.RequestTimeout: a read
// queued on a connection that is being re-established must not hold the
// watcher longer than that.
func (w *watcher) call(f func() error) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.r.cfg.RequestTimeout)
	defer cancel()
	return w.r.do(ctx, f)
}

// sync reads whatever is not known or not watched: the root's children
// (watch-all), each service's children, each instance node.
func (w *watcher) sync() error {
	if w.all && w.rootList == nil && w.rootExist == nil {
		if err := w.syncRoot(); err != nil {
			w.markStale()
			return err
		}
	}
	var errs []error
	for _, s := range w.svcs {
		s.failed = false
		if err := w.syncService(s); err != nil {
			s.failed, s.stale = true, true
			errs = append(errs, fmt.Errorf("service %q: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// appearTries bounds how often a read retries at once when the node it
// found missing was created before the exists watch could be set.
const appearTries = 3

func (w *watcher) syncRoot() error {
	r := w.r
	var names []string
	for try := 1; ; try++ {
		var ch <-chan gozk.Event
		err := w.call(func() error {
			var err error
			names, _, ch, err = r.conn.ChildrenW(r.root)
			return err
		})
		if err == nil {
			w.rootList = ch
			break
		}
		if !errors.Is(err, gozk.ErrNoNode) {
			return err
		}
		var ok bool
		err = w.call(func() error {
			var err error
			ok, _, ch, err = r.conn.ExistsW(r.root)
			return err
		})
		if err != nil {
			return err
		}
		if !ok {
			w.rootExist, names = ch, nil
			break
		}
		if try == appearTries { // the exists watch is set and fires on the next change
			return fmt.Errorf("%s keeps appearing and disappearing", r.root)
		}
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if registry.ValidateName(n) != nil {
			continue // not a service node of ours
		}
		seen[n] = true
		if w.svcs[n] == nil {
			w.svcs[n] = &svcState{name: n}
		}
	}
	for n, s := range w.svcs {
		if !seen[n] {
			delete(w.svcs, n)
			if s.shown {
				w.gone = append(w.gone, n)
			}
		}
	}
	return nil
}

func (w *watcher) syncService(s *svcState) error {
	r := w.r
	path := r.servicePath(s.name)
	if s.list == nil && s.exist == nil {
		if err := w.listService(s, path); err != nil {
			return err
		}
	}
	var ids []string
	for id, k := range s.kids {
		if k.watch == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	type read struct {
		data []byte
		st   *gozk.Stat
		ch   <-chan gozk.Event
		err  error
	}
	reads := make([]read, len(ids))
	err := w.call(func() error {
		parallel(len(ids), func(i int) {
			rd := &reads[i]
			rd.data, rd.st, rd.ch, rd.err = r.conn.GetW(path + "/" + ids[i])
		})
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for i, id := range ids {
		rd := reads[i]
		switch {
		case errors.Is(rd.err, gozk.ErrNoNode):
			delete(s.kids, id) // the children watch fires too
			s.dirty = true
		case rd.err != nil:
			errs = append(errs, rd.err)
		default:
			s.kids[id] = &kid{in: r.decode(s.name, id, rd.data), mzxid: rd.st.Mzxid, watch: rd.ch}
			s.dirty = true
		}
	}
	return errors.Join(errs...)
}

// listService reads the service's children and sets a children watch, or
// an exists watch if the service node is missing.
func (w *watcher) listService(s *svcState, path string) error {
	r := w.r
	for try := 1; ; try++ {
		var ids []string
		var st *gozk.Stat
		var ch <-chan gozk.Event
		err := w.call(func() error {
			var err error
			ids, st, ch, err = r.conn.ChildrenW(path)
			return err
		})
		if err == nil {
			s.list, s.pzxid, s.dirty = ch, st.Pzxid, true
			kids := make(map[string]*kid, len(ids))
			for _, id := range ids {
				if k := s.kids[id]; k != nil {
					kids[id] = k
				} else {
					kids[id] = &kid{}
				}
			}
			s.kids = kids
			return nil
		}
		if !errors.Is(err, gozk.ErrNoNode) {
			return err
		}
		var ok bool
		err = w.call(func() error {
			var err error
			ok, _, ch, err = r.conn.ExistsW(path)
			return err
		})
		if err != nil {
			return err
		}
		if !ok {
			s.exist, s.pzxid, s.kids, s.dirty = ch, 0, nil, true
			return nil
		}
		if try == appearTries {
			return fmt.Errorf("%s keeps appearing and disappearing", path)
		}
	}
}

// publish hands the feed the state of every service that changed and was
// read completely. A watch-all does not report services it never saw with
// instances.
func (w *watcher) publish() {
	now := time.Now()
	for _, n := range w.gone {
		w.feed.Publish(&registry.Update{Service: n, Instances: []*registry.Instance{}, Source: Source, Time: now})
	}
	w.gone = nil
	for _, s := range w.svcs {
		if s.failed || !s.dirty && !s.stale {
			continue
		}
		ins := make([]*registry.Instance, 0, len(s.kids))
		rev := s.pzxid
		for _, k := range s.kids {
			if k.in != nil {
				ins = append(ins, k.in.Clone())
			}
			rev = max(rev, k.mzxid)
		}
		stale := s.stale
		s.dirty, s.stale = false, false
		if w.all && len(ins) == 0 && !s.shown {
			continue
		}
		if stale {
			w.feed.Forget(s.name)
		}
		w.feed.Publish(&registry.Update{Service: s.name, Instances: ins, Source: Source, Revision: rev, Time: now})
		s.shown = len(ins) > 0
	}
}

// watchKind says what a fired channel was watching.
type watchKind int

const (
	kindDone watchKind = iota
	kindRetry
	kindSession
	kindRootList
	kindRootExist
	kindList
	kindExist
	kindKid
)

type target struct {
	kind watchKind
	s    *svcState
	id   string
}

// wait blocks until a watch fires (then takes every other one that has fired
// too, so that a burst of changes gives one read), until the session comes
// back after a loss or, if retry > 0 (a read failed), until retry has passed
// or the session is back. It returns false when the watcher ends.
func (w *watcher) wait(retry time.Duration) bool {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.r.sessionChanged())},
	}
	targets := []target{{kind: kindDone}, {kind: kindSession}}
	if retry > 0 {
		t := time.NewTimer(retry)
		defer t.Stop()
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C)})
		targets = append(targets, target{kind: kindRetry})
	}
	add := func(ch <-chan gozk.Event, t target) {
		if ch != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
			targets = append(targets, t)
		}
	}
	add(w.rootList, target{kind: kindRootList})
	add(w.rootExist, target{kind: kindRootExist})
	for _, s := range w.svcs {
		add(s.list, target{kind: kindList, s: s})
		add(s.exist, target{kind: kindExist, s: s})
		for id, k := range s.kids {
			add(k.watch, target{kind: kindKid, s: s, id: id})
		}
	}
	fired := w.checkSession(false, retry) // it may have changed while we were reading
	for {
		if fired {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectDefault})
		}
		i, _, _ := reflect.Select(cases)
		if fired && i == len(cases)-1 {
			return true // nothing more pending
		}
		if fired {
			cases = cases[:len(cases)-1]
		}
		t := targets[i]
		switch t.kind {
		case kindDone:
			return false
		case kindRetry:
			return true
		case kindSession:
			cases[i].Chan = reflect.ValueOf(w.r.sessionChanged())
			if w.checkSession(true, retry) {
				fired = true
			}
			continue
		case kindRootList:
			w.rootList = nil
		case kindRootExist:
			w.rootExist = nil
		case kindList:
			t.s.list = nil
		case kindExist:
			t.s.exist = nil
		case kindKid:
			if k := t.s.kids[t.id]; k != nil {
				k.watch = nil
			}
		}
		cases[i].Chan = reflect.Value{} // each watch fires once
		fired = true
	}
}

// checkSession reports a lost connection to the consumer once, and returns
// true when the watcher should read again: the connection is back after a
// loss (the state must be confirmed), or a session event says it is up while
// a failed read waits for its retry (retry now).
func (w *watcher) checkSession(event bool, retry time.Duration) bool {
	state := w.r.conn.State()
	switch {
	case state != gozk.StateHasSession:
		if !w.lost {
			w.lost = true
			w.feed.Fail(fmt.Errorf("zookeeper: watch %q: %w: connection lost (%v)", w.name, registry.ErrUnavailable, state))
		}
		return false
	case w.lost:
		w.lost = false
		w.markStale()
		return true
	default:
		return event && retry > 0
	}
}
