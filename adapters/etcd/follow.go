package etcd

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/internal/backoff"
)

// confirmRetry is how often a follow tries again to confirm the states
// after the connection came back, while etcd does not answer; confirmWait
// is how long it tries before listing the namespace instead.
const (
	confirmRetry = 200 * time.Millisecond
	confirmWait  = 10 * time.Second
)

// closedChan is a closed channel: a signal that has already fired.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// follower is the goroutine that keeps the hub's store current: it lists
// what the watchers need, follows an etcd watch of the namespace from the
// list's revision, and lists again when the watch fails, until the hub is
// idle or the registry closes.
type follower struct {
	c   *conn
	h   *hub
	l   *lister
	rec *records
}

func newFollower(c *conn, h *hub, rec *records) *follower {
	return &follower{c: c, h: h, l: &lister{c: c, rec: rec, h: h}, rec: rec}
}

// run lists and follows until the hub is idle, retrying with capped
// backoff; a follow that worked for a while, or a history change or a new
// watch-all, lists again at once.
func (f *follower) run() {
	bo := backoff.Backoff{Base: 100 * time.Millisecond, Max: f.c.maxBackoff}
	for !f.h.idle() {
		rev, err := f.l.relist()
		if err != nil {
			if f.c.ctx.Err() != nil || errors.Is(err, rpctypes.ErrCompacted) {
				continue // closing; or compacted between the list's ranges: list again at once
			}
			f.c.log.Debug("etcd: watch list failed; will retry", "prefix", f.h.prefix, "error", err)
			f.h.fail(err)
			f.sleep(bo.Next())
			continue
		}
		progressed, err := f.follow(rev)
		switch {
		case f.c.ctx.Err() != nil, errors.Is(err, errIdle):
			continue
		case errors.Is(err, rpctypes.ErrCompacted):
			f.c.log.Info("etcd: watch revision compacted; listing again", "prefix", f.h.prefix, "revision", rev)
		case errors.Is(err, errHistoryChanged), errors.Is(err, errResync):
			bo.Reset() // list the new history, or for the new watchers, at once
			continue
		case errors.Is(err, errNoConfirm):
			f.c.log.Info("etcd: states not confirmed after the connection came back; listing again", "prefix", f.h.prefix)
			bo.Reset()
			continue
		default:
			f.c.log.Warn("etcd: watch failed; listing again", "prefix", f.h.prefix, "error", err)
			f.h.fail(f.c.wrapErr(context.Background(), "watch "+f.h.prefix, err))
		}
		if progressed {
			bo.Reset() // it worked for a while: resume at once
			continue
		}
		f.sleep(bo.Next())
	}
}

// sleep waits d, or less when the connection comes back, a watcher comes or
// goes, or the registry closes.
func (f *follower) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.c.reconnected.Wait():
	case <-f.h.wake:
	case <-f.c.ctx.Done():
	}
}

// stream is one follow: an etcd watch of the namespace from a revision,
// and the confirmation of the states after a lost connection.
type stream struct {
	f      *follower
	ctx    context.Context // ends the watch; cancelled by stop
	cancel context.CancelFunc
	why    atomic.Pointer[error] // why stop ended the follow
	hist   <-chan struct{}       // closed when etcd's history changes; nil once seen

	// Armed when the last watcher has gone: the follow ends when it fires
	// and none has come back.
	linger  *time.Timer
	lingerC <-chan time.Time

	// Owned by the follow's goroutine.
	progressed bool // a response arrived
	// applied is the revision up to which every event of the prefix has
	// been applied: the last event's (a response may carry part of a
	// revision range only), or a progress notification's (sent only once
	// the watch is synced).
	applied int64
	// While the states wait for a confirmation: back fires when the
	// connection is ready again, retryC every confirmRetry while the
	// confirmation fails, until giveUp.
	back       <-chan struct{}
	retryC     <-chan time.Time
	giveUp     <-chan time.Time
	retryTimer *time.Timer
}

// follow watches from rev+1 and applies events until the watch fails, etcd's
// history changes, no watcher is left or the registry closes. progressed
// says whether any response arrived.
//
// A lost connection does not end it. clientv3 keeps the watch through the
// outage and, once a connection is ready again, resumes it from the
// revision after the last one it delivered; etcd then sends what was missed
// (or reports a compaction, which ends follow and lists again). So follow
// reports the loss to every feed at once (clientv3 itself would stay
// silent), and after the reconnection confirms the states (lister.recover):
// at once if etcd's store is still at the last revision applied, else by
// reading each held service again. A recovery thus costs each process one
// watch resumption and a read or a few, not a read of the whole namespace.
// While etcd does not answer, it tries every confirmRetry; after
// confirmWait it ends with errNoConfirm and run lists again.
func (f *follower) follow(rev int64) (progressed bool, err error) {
	s := &stream{f: f, hist: f.c.historyChanged.Wait(), applied: rev}
	s.ctx, s.cancel = context.WithCancel(clientv3.WithRequireLeader(f.c.ctx))
	defer s.cancel()
	defer func() {
		if s.retryTimer != nil {
			s.retryTimer.Stop()
		}
		if s.linger != nil {
			s.linger.Stop()
		}
	}()
	f.h.setFollowing(true)
	defer f.h.setFollowing(false)
	wch := s.open(rev)
	for {
		resp, ok := s.next(wch)
		if !ok || s.why.Load() != nil {
			break
		}
		if err := resp.Err(); err != nil {
			return s.progressed, err
		}
		s.progressed = true
		s.apply(resp)
	}
	if f.c.ctx.Err() != nil {
		return s.progressed, f.c.ctx.Err()
	}
	if p := s.why.Load(); p != nil {
		return s.progressed, *p
	}
	return s.progressed, errWatchClosed
}

// stop ends the follow with err (the first one given wins).
func (s *stream) stop(err error) {
	s.why.CompareAndSwap(nil, &err)
	s.cancel()
}

// open starts the watch from rev+1. clientv3's Watch blocks while its
// stream is (re)connecting, so it runs on a goroutine of its own meanwhile,
// while this one ends the follow if etcd's history changes or the hub stays
// without watchers (Watch then returns, its context cancelled); that
// goroutine ends with the call. Once the watch is open, next does the same.
func (s *stream) open(rev int64) clientv3.WatchChan {
	opened := make(chan clientv3.WatchChan, 1)
	go func() {
		opened <- s.f.c.client.Watch(s.ctx, s.f.h.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	}()
	for {
		select {
		case wch := <-opened:
			return wch
		case <-s.hist:
			s.hist = nil
			s.stop(errHistoryChanged)
		case <-s.f.h.wake:
			s.watchersChanged()
		case <-s.lingerC:
			s.lingered()
		}
	}
}

// watchersChanged arms the linger when the last watcher has gone, or ends
// the follow at once when the hub does not linger.
func (s *stream) watchersChanged() {
	h := s.f.h
	if s.lingerC != nil || h.subscribers() > 0 {
		return
	}
	if h.linger <= 0 {
		s.stop(errIdle)
		return
	}
	if s.linger == nil {
		s.linger = time.NewTimer(h.linger)
	} else {
		s.linger.Reset(h.linger)
	}
	s.lingerC = s.linger.C
}

// lingered ends the follow when the hub has been without watchers for its
// linger, unless one came back or a failure awaits its confirmation (the
// watchers of a recovering tier may come back).
func (s *stream) lingered() {
	h := s.f.h
	s.lingerC = nil
	if h.subscribers() > 0 {
		return
	}
	if h.isStale() {
		s.linger.Reset(h.linger)
		s.lingerC = s.linger.C
		return
	}
	s.stop(errIdle)
}

// next returns the next watch response, handling meanwhile what else
// comes: services to fetch for new watchers, a lost connection and the
// confirmation of the states after it, a history change, the watchers
// leaving.
func (s *stream) next(wch clientv3.WatchChan) (clientv3.WatchResponse, bool) {
	for {
		select {
		case resp, ok := <-wch:
			return resp, ok
		case <-s.f.h.fetch:
			if err := s.f.l.fetchPending(s.ctx); err != nil {
				s.stop(err)
			}
		case <-s.f.h.lost:
			if !s.f.h.isStale() {
				// A loss reported while the follower was listing, whose
				// list has confirmed the states since: nothing to confirm
				// (confirming again would give every watcher the same
				// state twice).
				continue
			}
			// The hub has told the watchers (connLost); the states are
			// confirmed once the connection is back.
			s.f.c.log.Debug("etcd: connection lost; the watch resumes when it is back", "prefix", s.f.h.prefix)
			s.back, s.retryC, s.giveUp = s.f.c.reconnected.Wait(), nil, nil
			if s.f.c.ready.Load() {
				s.back = closedChan // ready again already
			}
		case <-s.hist:
			s.hist = nil
			s.stop(errHistoryChanged)
		case <-s.f.h.wake:
			s.watchersChanged()
		case <-s.lingerC:
			s.lingered()
		case <-s.retryC:
			s.retryC, s.back = nil, closedChan
		case <-s.back:
			s.back = nil
			s.confirm()
		case <-s.giveUp:
			s.stop(errNoConfirm)
		}
	}
}

// confirm tries to confirm the states after the connection came back; if
// etcd does not answer (or a loss came meanwhile) it tries again in a
// while, for at most confirmWait.
func (s *stream) confirm() {
	done, err := s.f.l.recover(s.ctx, s.applied, s.hist)
	switch {
	case err != nil:
		s.stop(err)
		return
	case done:
		s.giveUp = nil
		return
	}
	if s.giveUp == nil {
		s.giveUp = time.After(confirmWait)
	}
	if s.retryTimer == nil {
		s.retryTimer = time.NewTimer(confirmRetry)
	} else {
		s.retryTimer.Reset(confirmRetry)
	}
	s.retryC = s.retryTimer.C
}

// apply hands a response's events of the held services to the hub, or
// notes a progress notification.
func (s *stream) apply(resp clientv3.WatchResponse) {
	if len(resp.Events) == 0 {
		if resp.IsProgressNotify() {
			s.applied = resp.Header.Revision
			s.f.h.progress(s.applied)
		}
		return
	}
	s.applied = resp.Events[len(resp.Events)-1].Kv.ModRevision
	s.f.h.apply(s.f.decode(resp.Events), resp.Header.Revision)
}

// decode turns the events of the held services into store events; the
// others are skipped undecoded. It reads the store's held services without
// the hub's lock: only this goroutine writes them.
func (f *follower) decode(evs []*clientv3.Event) []event {
	st := &f.h.st
	out := make([]event, 0, len(evs))
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		if !st.allHeld {
			name, _, ok := f.rec.splitKey(key)
			if !ok || !st.accepts(name, ev.Kv.ModRevision) {
				continue // not held, or already in the fetched state
			}
		}
		if ev.Type == mvccpb.PUT {
			name, in, ok := f.rec.decode(ev.Kv)
			if name == "" {
				continue
			}
			if !ok {
				in = nil // a malformed put removes what the key held
			}
			out = append(out, event{key, name, in})
			continue
		}
		if name, _, ok := f.rec.splitKey(key); ok {
			out = append(out, event{key, name, nil})
		}
	}
	return out
}
