package etcd

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

// hubLinger is how long the watch hub keeps following the namespace after
// its last watcher stopped, and after the confirmation of a failure that
// came meanwhile. A chain stops a tier's watchers when the tier goes down
// and starts new ones once it is up again: the hub then still holds the
// current state, resumed with the connection, and a recovery costs no list
// of the namespace.
const hubLinger = 10 * time.Second

// progressRetry is how often follow asks etcd for a progress notification
// after the connection came back, until one comes; progressWait is how
// long it asks before listing the namespace instead.
const (
	progressRetry = 200 * time.Millisecond
	progressWait  = 10 * time.Second
)

// closedChan is a closed channel: a signal that has already fired.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// follow watches from rev+1 and applies events until the watch fails, etcd's
// history changes, no watcher is left or the registry closes. progressed
// says whether any response arrived.
//
// A lost connection does not end it. clientv3 keeps the watch through the
// outage and, once a connection is ready again, resumes it from the
// revision after the last one it delivered; etcd then sends what was missed
// (or reports a compaction, which ends follow and lists again). So follow
// reports the loss to every feed at once (clientv3 itself would stay
// silent), and after the reconnection asks etcd for a progress notification
// (clientv3.RequestProgress, retried every progressRetry: etcd answers
// only once every watcher of the stream has caught up). That notification
// is proof that the state is current, and every state is delivered again
// to confirm it. A recovery thus costs each process one watch resumption
// and a few progress requests, not a read of the whole namespace. If etcd
// sends no notification within progressWait of the reconnection (an etcd
// older than 3.4 ignores the request), follow ends with errNoProgress and
// run lists again.
func (h *hub) follow(rev int64) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(h.r.ctx))
	defer cancel()
	h.setFollowing(true)
	defer h.setFollowing(false)
	// clientv3's Watch blocks while its stream is (re)connecting: a helper
	// cancels it when follow must end.
	var why atomic.Pointer[error]
	stop := func(err error) {
		why.CompareAndSwap(nil, &err)
		cancel()
	}
	hist := h.r.historyChanged.wait()
	followDone, helperDone := make(chan struct{}), make(chan struct{})
	lostc := make(chan struct{}, 1) // the helper saw a loss: wait for the reconnection
	linger := h.r.hubLinger
	if linger == 0 {
		linger = hubLinger
	}
	go func() {
		defer close(helperDone)
		// Armed when the last watcher has gone: follow ends when it fires
		// and none has come back.
		var (
			lingerT *time.Timer
			lingerC <-chan time.Time
		)
		defer func() {
			if lingerT != nil {
				lingerT.Stop()
			}
		}()
		for {
			select {
			case <-h.lost:
				// Reported here, not by the loop below: clientv3's Watch
				// call blocks while the stream is connecting.
				h.r.log.Debug("etcd: connection lost; the watch resumes when it is back", "prefix", h.prefix)
				h.fail(h.r.wrapErr(context.Background(), "watch "+h.prefix, errConnLost))
				select {
				case lostc <- struct{}{}:
				default:
				}
			case <-hist:
				stop(errHistoryChanged)
				return
			case <-h.wake:
				if lingerC == nil && h.subscribers() == 0 {
					if linger <= 0 {
						stop(errIdle)
						return
					}
					lingerT = time.NewTimer(linger)
					lingerC = lingerT.C
				}
			case <-lingerC:
				lingerC = nil
				if h.subscribers() > 0 {
					continue
				}
				if h.isStale() {
					// A failure awaits its confirmation: the watchers of a
					// recovering tier may come back.
					lingerT.Reset(linger)
					lingerC = lingerT.C
					continue
				}
				stop(errIdle)
				return
			case <-followDone:
				return
			}
		}
	}()
	defer func() {
		close(followDone)
		<-helperDone
	}()
	wch := h.r.client.Watch(ctx, h.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	changed := make(map[string]struct{})
	type decoded struct {
		key  string
		name string
		in   *registry.Instance // nil: the key no longer holds a valid instance
	}
	var (
		evs []decoded
		// applied is the revision up to which every event of the prefix
		// has been applied: the last event's (a response may carry part
		// of a revision range only), or a progress notification's.
		applied = rev
		// While the states wait for a confirmation: back fires when the
		// connection is ready again, and from then on retry asks for a
		// progress notification every progressRetry until giveUp.
		back          <-chan struct{}
		retry, giveUp <-chan time.Time
		retryTimer    *time.Timer
	)
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()
	requestProgress := func() {
		rctx, rcancel := context.WithTimeout(ctx, progressRetry)
		defer rcancel()
		h.r.client.RequestProgress(rctx) //nolint:errcheck // retried until a notification comes
	}
	for {
		var (
			resp clientv3.WatchResponse
			ok   bool
		)
		select {
		case resp, ok = <-wch:
		case <-h.fetch:
			if err := h.fetchPending(ctx); err != nil {
				stop(err)
			}
			continue
		case <-lostc:
			back, retry, giveUp = h.r.reconnected.wait(), nil, nil
			if h.r.connReady.Load() {
				back = closedChan // ready again already
			}
			continue
		case <-back:
			back = nil
			if h.caughtUp(ctx, applied, hist) {
				h.progress(applied)
				continue
			}
			if retryTimer != nil {
				retryTimer.Stop()
			}
			retryTimer = time.NewTimer(0)
			retry, giveUp = retryTimer.C, time.After(progressWait)
			continue
		case <-retry:
			requestProgress()
			retryTimer.Reset(progressRetry)
			continue
		case <-giveUp:
			stop(errNoProgress)
			continue
		}
		if !ok || why.Load() != nil {
			break
		}
		if err := resp.Err(); err != nil {
			return progressed, err
		}
		progressed = true
		if len(resp.Events) == 0 {
			if resp.IsProgressNotify() {
				applied = resp.Header.Revision
				h.progress(applied)
				if retryTimer != nil {
					retryTimer.Stop()
				}
				back, retry, giveUp = nil, nil, nil
			}
			continue
		}
		applied = resp.Events[len(resp.Events)-1].Kv.ModRevision
		evs = evs[:0]
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			if !h.allHeld {
				// Read without mu: only this goroutine writes held.
				name, _, ok := h.r.splitKey(key)
				if !ok {
					continue
				}
				if _, held := h.held[name]; !held || ev.Kv.ModRevision <= h.since[name] {
					continue // not held, or already in the fetched state
				}
			}
			if ev.Type == mvccpb.PUT {
				name, in, ok := h.r.decode(ev.Kv)
				if name == "" {
					continue
				}
				if !ok {
					in = nil // a malformed put removes what the key held
				}
				evs = append(evs, decoded{key, name, in})
				continue
			}
			if name, _, ok := h.r.splitKey(key); ok {
				evs = append(evs, decoded{key, name, nil})
			}
		}
		now := time.Now()
		h.mu.Lock()
		for _, ev := range evs {
			if h.applyLocked(ev.key, ev.name, ev.in) {
				changed[ev.name] = struct{}{}
			}
		}
		h.rev = resp.Header.Revision
		for name := range changed {
			h.publishLocked(name, now)
			delete(changed, name)
		}
		h.mu.Unlock()
	}
	if h.r.ctx.Err() != nil {
		return progressed, h.r.ctx.Err()
	}
	if p := why.Load(); p != nil {
		return progressed, *p
	}
	return progressed, errWatchClosed
}

// maxFetch is how many pending services fetchPending reads one by one;
// more make the hub list the namespace instead.
const maxFetch = 64

// errResync ends follow so that run lists the namespace at once: a
// watch-all came, or too many services to fetch one by one.
var errResync = errors.New("listing the namespace for new watchers")

// fetchPending gives the watchers of services the hub does not hold yet
// their first states. Each service's keys are read (one range over its
// prefix, linearizable, at revision R); the state then holds the service,
// and its events up to R are skipped: those already received were
// committed before the read, so R covers them. It runs on the run
// goroutine, between two watch responses. A failed read fails the
// service's feeds (etcd is unreachable, say) and leaves it pending for the
// next fetch or list. It returns errResync when a list is due instead.
func (h *hub) fetchPending(ctx context.Context) error {
	h.mu.Lock()
	if h.wantAll || len(h.pending) > maxFetch {
		h.mu.Unlock()
		return errResync
	}
	names := make([]string, 0, len(h.pending))
	for name := range h.pending {
		names = append(names, name)
	}
	h.mu.Unlock()
	var failed bool
	for _, name := range names {
		cctx, cancel := h.r.opCtx(ctx)
		prefix := h.r.servicePrefix(name)
		resp, err := h.r.client.Get(cctx, prefix, clientv3.WithPrefix())
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil // follow is ending
			}
			err = h.r.wrapErr(context.Background(), "watch: read "+prefix, err)
			h.mu.Lock()
			for f := range h.subs[name] {
				f.Fail(err)
			}
			h.mu.Unlock()
			failed = true
			continue
		}
		h.r.observe(resp.Header)
		m := make(map[string]*registry.Instance, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			if _, in, ok := h.r.decode(kv); ok {
				m[string(kv.Key)] = in
			}
		}
		h.mu.Lock()
		if _, ok := h.pending[name]; ok {
			delete(h.pending, name)
			h.held[name] = struct{}{}
			h.since[name] = resp.Header.Revision
			if len(m) > 0 {
				h.state[name] = m
			} else {
				delete(h.state, name)
			}
			if !h.stale {
				now := time.Now()
				u := h.updateLocked(name, now)
				for f := range h.subs[name] {
					f.Publish(cloneUpdate(u))
				}
			}
		}
		h.mu.Unlock()
	}
	if failed {
		// Try again later: the connection's return, or the next watcher.
		h.r.wg.Add(1)
		go func() {
			defer h.r.wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-h.r.reconnected.wait():
			case <-time.After(time.Second):
			}
			select {
			case h.fetch <- struct{}{}:
			default:
			}
		}()
	}
	return nil
}

// caughtUp reports whether etcd's store is still at applied, the revision
// up to which every event has been applied, so that the states are current
// without waiting for a progress notification: etcd sends none to a watch
// resumed from a revision it has not reached yet (clientv3 resumes from
// the one after the last it delivered), so after an outage without writes
// a request would never be answered. It reads one key that holds nothing
// (the namespace's prefix itself) for the store's revision; the header
// also goes to the history check, and a history that changed (hist fired)
// is never caught up.
func (h *hub) caughtUp(ctx context.Context, applied int64, hist <-chan struct{}) bool {
	cctx, cancel := h.r.opCtx(ctx)
	defer cancel()
	resp, err := h.r.client.Get(cctx, h.prefix)
	if err != nil {
		return false
	}
	h.r.observe(resp.Header)
	select {
	case <-hist:
		return false
	default:
	}
	return resp.Header.Revision == applied
}

// progress handles a progress notification: every event up to rev has been
// applied. After a reported failure, it delivers every state again to
// confirm it.
func (h *hub) progress(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = max(h.rev, rev)
	if !h.stale {
		return
	}
	h.stale = false
	h.r.log.Debug("etcd: watch caught up after the connection came back; states confirmed", "prefix", h.prefix, "revision", rev)
	h.publishAllLocked(time.Now(), true, nil)
}
