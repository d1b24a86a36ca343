package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
	errNoConfirm   = errors.New("states not confirmed after the connection came back")
)

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
// hubLinger after the last one stopped (see hubLinger). It receives every
// event of the namespace, but decodes and keeps in memory only the
// services it holds: those watched since it started (all of them once a
// watch-all came). The state maps service -> key -> instance; instances
// are never modified once stored, so published Updates share them. It
// publishes each changed service's complete set to that service's feeds
// and to the watch-alls.
//
// A watcher of a service the hub does not hold yet gets its first state
// from a read of that service's keys alone (fetchPending), made on the run
// goroutine between two watch responses: events of the service up to the
// read's revision are then skipped (since), later ones applied.
type hub struct {
	r      *Registry
	prefix string
	wake   chan struct{} // capacity 1: the subscribers changed
	lost   chan struct{} // capacity 1: the client's connection was lost
	fetch  chan struct{} // capacity 1: services to fetch are pending

	mu sync.Mutex // guards the fields below
	// stale says an error was reported since the last state: the next list
	// or confirmation (recover) delivers every state even if unchanged, to
	// confirm it.
	stale     bool
	losses    int   // failures reported, to tell a confirmation made across one
	lastErr   error // the last failure reported
	subs      map[string]map[*registry.Feed]struct{}
	nsubs     int
	running   bool
	ended     error // set by endAll: no more subscribers
	synced    bool  // state is a complete list
	rev       int64 // revision of state
	state     map[string]map[string]*registry.Instance
	lists     int  // relists done, for tests
	listed    int  // records the relists read, for tests
	following bool // follow is running (it confirms states after a loss)
	// pending are the services watched but not held yet; wantAll says a
	// watch-all came and the state must hold every service. Set by
	// subscribe, taken by the run goroutine (relist, fetchPending).
	pending map[string]struct{}
	wantAll bool

	// Written by the run goroutine only, under mu (subscribe reads them).
	held    map[string]struct{} // the services the state holds
	allHeld bool                // the state holds every service
	since   map[string]int64    // a fetched service's read revision: its events up to it are in the state
}

func (h *hub) init(r *Registry) {
	h.r = r
	h.prefix = r.ns + "/"
	h.wake = make(chan struct{}, 1)
	h.lost = make(chan struct{}, 1)
	h.fetch = make(chan struct{}, 1)
	h.pending = make(map[string]struct{})
	h.held = make(map[string]struct{})
	h.since = make(map[string]int64)
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
	held := h.holdsLocked(name)
	if h.stale && h.lastErr != nil && !h.r.connReady.Load() {
		// etcd is unreachable: say so now, as to the other watchers. (Once
		// the connection is back the confirmation is a round trip away: the
		// feed waits for it without an error, which a chain restarting its
		// watchers of a recovered tier would count against the tier.)
		f.Fail(h.lastErr)
	}
	if h.synced && !h.stale && held {
		now := time.Now()
		if name != "" {
			f.Publish(h.updateLocked(name, now))
		} else {
			for svc := range h.state {
				f.Publish(h.updateLocked(svc, now))
			}
		}
	}
	if !held {
		if name == "" {
			h.wantAll = true
		} else {
			h.pending[name] = struct{}{}
		}
		select {
		case h.fetch <- struct{}{}:
		default:
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

// holdsLocked reports whether the state holds service name ("": every
// service).
func (h *hub) holdsLocked(name string) bool {
	if h.allHeld {
		return true
	}
	if name == "" {
		return false
	}
	_, ok := h.held[name]
	return ok
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
	h.held, h.allHeld, h.since = make(map[string]struct{}), false, make(map[string]int64)
	h.pending, h.wantAll = make(map[string]struct{}), false
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
			if errors.Is(err, rpctypes.ErrCompacted) {
				// Compacted between the list's ranges: list again at once.
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
		case errors.Is(err, errResync):
			bo.Reset()
			continue
		case errors.Is(err, errNoConfirm):
			h.r.log.Info("etcd: states not confirmed after the connection came back; listing again", "prefix", h.prefix)
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
	h.losses++
	h.lastErr = err
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
	case <-h.r.reconnected.Wait():
	case <-h.wake:
	case <-h.r.ctx.Done():
	}
}
