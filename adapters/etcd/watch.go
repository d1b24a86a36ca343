package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// listPage is how many records one request of a relist reads.
const listPage = 5000

var (
	errWatchClosed = errors.New("watch channel closed")
	errConnLost    = errors.New("connection to etcd lost")
	errIdle        = errors.New("no watcher left")
	errNoProgress  = errors.New("no progress notification after the connection came back")
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

// Watch implements registry.Registry. It returns at once. Every watcher of
// a registry is fed by one etcd watch over the whole namespace (see hub):
// watching N services costs one etcd watch and one goroutine, not N. The
// first Next returns the service's current state (for name "", one Update
// per service that has instances); later ones the complete instance set of
// the service after each change. When the shared watch fails (compaction,
// lost leader, closed stream) or etcd comes back with another history, the
// namespace is listed again and every watcher gets the states that differ.
// When the client's connection to etcd is lost (clientv3 itself would wait
// for etcd silently), Next reports it at once; the watch resumes with the
// connection, delivers what changed meanwhile, and once etcd shows it has
// caught up every state is delivered again, without listing the namespace
// (see hub.follow). Failures other than compaction and a history change
// are reported once by Next as transient errors (wrapping ErrUnavailable
// when etcd is unreachable or has no leader); the watcher goes on, and the
// first state listed or confirmed after such an error is delivered even if
// unchanged. Update.Revision is the etcd revision of the state.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if name != "" {
		if err := registry.ValidateName(name); err != nil {
			return nil, fmt.Errorf("etcd: watch: %w", err)
		}
	}
	if r.isClosed() {
		return nil, r.errClosed("watch")
	}
	f, err := r.hub.subscribe(ctx, name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// hub is the one etcd watch over <namespace>/ behind every watcher of a
// registry. Its goroutine (run) starts with the first watcher and ends
// hubLinger after the last one stopped (see hubLinger). It keeps the whole namespace decoded in memory
// (service -> key -> instance; instances are never modified once stored,
// so published Updates share them) and publishes each changed service's
// complete set to that service's feeds and to the watch-alls.
type hub struct {
	r      *Registry
	prefix string
	wake   chan struct{} // capacity 1: the subscribers changed
	lost   chan struct{} // capacity 1: the client's connection was lost

	mu sync.Mutex // guards the fields below
	// stale says an error was reported since the last state: the next list
	// or progress notification delivers every state even if unchanged, to
	// confirm it.
	stale     bool
	subs      map[string]map[*registry.Feed]struct{}
	nsubs     int
	running   bool
	ended     error // set by endAll: no more subscribers
	synced    bool  // state is a complete list
	rev       int64 // revision of state
	state     map[string]map[string]*registry.Instance
	lists     int  // relists done, for tests
	following bool // follow is running (it confirms states after a loss)
}

func (h *hub) init(r *Registry) {
	h.r = r
	h.prefix = r.ns + "/"
	h.wake = make(chan struct{}, 1)
	h.lost = make(chan struct{}, 1)
	h.subs = make(map[string]map[*registry.Feed]struct{})
	h.state = make(map[string]map[string]*registry.Instance)
}

// subscribe returns a feed of service name ("" for every service), with its
// current state already published when the hub has one.
func (h *hub) subscribe(ctx context.Context, name string) (*registry.Feed, error) {
	var (
		mu   sync.Mutex
		feed *registry.Feed // nil until subscribed
	)
	f := registry.NewFeed(ctx, func() {
		mu.Lock()
		sub := feed
		mu.Unlock()
		if sub != nil {
			h.unsubscribe(sub, name)
		}
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended != nil {
		f.End(h.ended)
		return nil, h.ended
	}
	select {
	case <-f.Done():
		return f, nil // ctx already done: Next reports it
	default:
	}
	m := h.subs[name]
	if m == nil {
		m = make(map[*registry.Feed]struct{})
		h.subs[name] = m
	}
	m[f] = struct{}{}
	h.nsubs++
	mu.Lock()
	feed = f
	mu.Unlock()
	select {
	case <-f.Done():
		// Ended between the checks: onStop may have missed it.
		h.removeLocked(f, name)
		return f, nil
	default:
	}
	// While a failure awaits its confirmation the state may lack what
	// changed meanwhile: the new feed gets its first state with the
	// confirmation (see publishAllLocked).
	if h.synced && !h.stale {
		now := time.Now()
		if name != "" {
			f.Publish(h.updateLocked(name, now))
		} else {
			for svc := range h.state {
				f.Publish(h.updateLocked(svc, now))
			}
		}
	}
	if !h.running {
		h.running = true
		h.r.wg.Add(1) // before endAll, which runs before Close's Wait
		go h.run()
	}
	return f, nil
}

func (h *hub) unsubscribe(f *registry.Feed, name string) {
	h.mu.Lock()
	h.removeLocked(f, name)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hub) removeLocked(f *registry.Feed, name string) {
	m := h.subs[name]
	if _, ok := m[f]; !ok {
		return
	}
	delete(m, f)
	h.nsubs--
	if len(m) == 0 {
		delete(h.subs, name)
	}
}

// endAll ends every feed with err (the registry is closing).
func (h *hub) endAll(err error) {
	h.mu.Lock()
	h.ended = err
	var feeds []*registry.Feed
	for _, m := range h.subs {
		for f := range m {
			feeds = append(feeds, f)
		}
	}
	h.mu.Unlock()
	for _, f := range feeds {
		f.End(err) // its onStop unsubscribes it
	}
}

// connLost tells the running watch that the client's connection was lost:
// watchers report it, and their states are confirmed once the watch has
// caught up after the reconnection.
func (h *hub) connLost(state connectivity.State) {
	h.mu.Lock()
	n, running := h.nsubs, h.running
	h.mu.Unlock()
	if !running {
		return
	}
	h.r.log.Warn("etcd: connection lost; watchers report it, and their states are confirmed once etcd answers", "state", state.String(), "watchers", n)
	select {
	case h.lost <- struct{}{}:
	default:
	}
}

// idle reports whether no watcher is left; if so the goroutine is done and
// the state is dropped (a later watcher lists afresh).
func (h *hub) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nsubs > 0 && h.r.ctx.Err() == nil {
		return false
	}
	h.running, h.synced = false, false
	h.state = make(map[string]map[string]*registry.Instance)
	return true
}

func (h *hub) run() {
	defer h.r.wg.Done()
	bo := backoff.Backoff{Base: 100 * time.Millisecond, Max: h.r.maxBackoff}
	for !h.idle() {
		rev, err := h.relist()
		if err != nil {
			if h.r.ctx.Err() != nil {
				continue
			}
			h.r.log.Debug("etcd: watch list failed; will retry", "prefix", h.prefix, "error", err)
			h.fail(err)
			h.sleep(bo.Next())
			continue
		}
		progressed, err := h.follow(rev)
		switch {
		case h.r.ctx.Err() != nil, errors.Is(err, errIdle):
			continue
		case errors.Is(err, rpctypes.ErrCompacted):
			h.r.log.Info("etcd: watch revision compacted; listing again", "prefix", h.prefix, "revision", rev)
		case errors.Is(err, errHistoryChanged):
			// Relist from the new history at once.
			bo.Reset()
			continue
		case errors.Is(err, errNoProgress):
			h.r.log.Info("etcd: no progress notification after the connection came back; listing again", "prefix", h.prefix)
			bo.Reset()
			continue
		default:
			h.r.log.Warn("etcd: watch failed; listing again", "prefix", h.prefix, "error", err)
			h.fail(h.r.wrapErr(context.Background(), "watch "+h.prefix, err))
		}
		if progressed {
			// It worked for a while: resume at once.
			bo.Reset()
			continue
		}
		h.sleep(bo.Next())
	}
}

// listCount returns how many times the namespace was listed.
func (h *hub) listCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lists
}

func (h *hub) setFollowing(on bool) {
	h.mu.Lock()
	h.following = on
	h.mu.Unlock()
}

// subscribers returns the number of feeds.
func (h *hub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nsubs
}

// awaitsConfirmation reports whether the hub is following the namespace
// and will confirm its states once the connection is back.
func (h *hub) awaitsConfirmation() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running && h.stale && h.following
}

// isStale reports whether a reported failure awaits its confirmation.
func (h *hub) isStale() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stale
}

// fail reports a transient error to every feed; the next list confirms
// their states.
func (h *hub) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stale = true
	for _, m := range h.subs {
		for f := range m {
			f.Fail(err)
		}
	}
}

// sleep waits d, or less when the connection comes back, a watcher comes or
// goes, or the registry closes.
func (h *hub) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.r.reconnected.wait():
	case <-h.wake:
	case <-h.r.ctx.Done():
	}
}

// relist reads the namespace, replaces the state with it and publishes
// every state that may have changed. It returns the read's revision.
func (h *hub) relist() (int64, error) {
	select {
	case <-h.lost: // a loss before this read: the read tells
	default:
	}
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
	h.publishAllLocked(now, forget, old)
	return rev, nil
}

// publishAllLocked delivers every subscribed service's state, and to the
// watch-alls every service's, including those only in old (a previous
// state, whose services may have gone). forget makes the feeds deliver
// states even if unchanged, to confirm them after a reported failure.
func (h *hub) publishAllLocked(now time.Time, forget bool, old map[string]map[string]*registry.Instance) {
	for name, m := range h.subs {
		if name == "" {
			continue
		}
		u := h.updateLocked(name, now)
		for f := range m {
			if forget {
				f.Forget(name)
			}
			f.Publish(cloneUpdate(u))
		}
	}
	if all := h.subs[""]; len(all) > 0 {
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
