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

// confirmRetry is how often follow tries again to confirm the states
// after the connection came back, while etcd does not answer; confirmWait
// is how long it tries before listing the namespace instead.
const (
	confirmRetry = 200 * time.Millisecond
	confirmWait  = 10 * time.Second
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
// silent), and after the reconnection confirms the states (recover): at
// once if etcd's store is still at the last revision applied, else by
// reading each held service again. A recovery thus costs each process one
// watch resumption and a read or a few, not a read of the whole namespace.
// While etcd does not answer, it tries every confirmRetry; after
// confirmWait it ends with errNoConfirm and run lists again.
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
	hist := h.r.historyChanged.Wait()
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
		// of a revision range only), or a progress notification's (sent
		// only once the watch is synced).
		applied = rev
		// While the states wait for a confirmation: back fires when the
		// connection is ready again, retryC every confirmRetry while the
		// confirmation fails, until giveUp.
		back           <-chan struct{}
		retryC, giveUp <-chan time.Time
		retryTimer     *time.Timer
	)
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()
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
			back, retryC, giveUp = h.r.reconnected.Wait(), nil, nil
			if h.r.connReady.Load() {
				back = closedChan // ready again already
			}
			continue
		case <-retryC:
			retryC = nil
			back = closedChan
			continue
		case <-back:
			back = nil
			done, err := h.recover(ctx, applied, hist)
			if err != nil {
				stop(err)
				continue
			}
			if done {
				giveUp = nil
				continue
			}
			// Not confirmed yet (etcd not answering, or a loss meanwhile):
			// again in a while, for at most confirmWait.
			if giveUp == nil {
				giveUp = time.After(confirmWait)
			}
			if retryTimer == nil {
				retryTimer = time.NewTimer(confirmRetry)
			} else {
				retryTimer.Reset(confirmRetry)
			}
			retryC = retryTimer.C
			continue
		case <-giveUp:
			stop(errNoConfirm)
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

// readService reads service name's keys (linearizable ranges over its
// prefix, in pages, at one revision R) and makes the state hold exactly them: the
// service is held from then on, and its events up to R are skipped, since
// those already received were committed before the read and R covers
// them. It runs on the run goroutine, between two watch responses.
func (h *hub) readService(ctx context.Context, name string) error {
	var rev int64
	m := make(map[string]*registry.Instance)
	// Paged like a list: a large service is read however long it takes.
	err := h.listRange(ctx, h.r.servicePrefix(name), &rev, func(kv *mvccpb.KeyValue) {
		if _, in, ok := h.r.decode(kv); ok {
			m[string(kv.Key)] = in
		}
	})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, name)
	h.held[name] = struct{}{}
	h.since[name] = rev
	if len(m) > 0 {
		h.state[name] = m
	} else {
		delete(h.state, name)
	}
	return nil
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
		if h.holdsLocked(name) {
			delete(h.pending, name) // a list has read it meanwhile
			continue
		}
		names = append(names, name)
	}
	h.mu.Unlock()
	var failed bool
	for _, name := range names {
		if err := h.readService(ctx, name); err != nil {
			if ctx.Err() != nil {
				return nil // follow is ending
			}
			h.mu.Lock()
			for f := range h.subs[name] {
				f.Fail(err)
			}
			h.mu.Unlock()
			failed = true
			continue
		}
		h.mu.Lock()
		empty := len(h.state[name]) == 0
		if !h.stale {
			u := h.updateLocked(name, time.Now())
			for f := range h.subs[name] {
				f.Publish(cloneUpdate(u))
			}
		}
		h.mu.Unlock()
		if empty {
			h.r.absent()
		}
	}
	if failed {
		// Try again later: the connection's return, or the next watcher.
		h.r.wg.Add(1)
		go func() {
			defer h.r.wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-h.r.reconnected.Wait():
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

// progress handles a progress notification: every event up to rev has been
// applied. It confirms nothing: one may have been sent before a loss.
func (h *hub) progress(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = max(h.rev, rev)
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
// watch-all, or more than maxFetch services held).
func (h *hub) recover(ctx context.Context, applied int64, hist <-chan struct{}) (bool, error) {
	h.mu.Lock()
	epoch := h.losses
	h.mu.Unlock()
	cctx, cancel := h.r.opCtx(ctx)
	resp, err := h.r.client.Get(cctx, h.prefix)
	cancel()
	if err != nil {
		return false, nil
	}
	v := h.r.observe(resp.Header)
	select {
	case <-hist:
		return false, errHistoryChanged
	default:
	}
	if v != same || resp.Header.Revision != applied {
		h.mu.Lock()
		all := h.allHeld
		names := make([]string, 0, len(h.held))
		for name := range h.held {
			names = append(names, name)
		}
		h.mu.Unlock()
		if all || len(names) > maxFetch {
			return false, errResync
		}
		for _, name := range names {
			if err := h.readService(ctx, name); err != nil {
				return false, nil
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.losses != epoch {
		return false, nil
	}
	h.stale = false
	h.r.log.Debug("etcd: states confirmed after the connection came back", "prefix", h.prefix, "revision", resp.Header.Revision, "still", resp.Header.Revision == applied)
	h.publishAllLocked(time.Now(), true, nil)
	return true, nil
}
