package etcd

import (
	"context"
	"time"

	"sync"

	"google.golang.org/grpc/connectivity"

	"github.com/regchain/regchain/registry"
)

// hubLinger is how long the watch keeps following the namespace after its
// last watcher stopped, and after the confirmation of a failure that came
// meanwhile. A chain stops a tier's watchers when the tier goes down and
// starts new ones once it is up again: the hub then still holds the
// current state, resumed with the connection, and a recovery costs no list
// of the namespace.
const hubLinger = 10 * time.Second

// hub is what every watcher of a registry shares: the store of the watched
// services, the watchers' feeds (a registry.Hub), and what the watch has
// reported to them. One follower goroutine (follow.go) keeps the store
// current; it starts with the first watcher (subscribe says so) and ends
// when the hub is idle: linger after the last watcher stopped.
//
// hub does no I/O. mu guards the store and the fields below it; the
// registry.Hub is called under mu, so that watchers see states in order
// (it never blocks).
type hub struct {
	c      *conn
	prefix string        // <namespace>/
	linger time.Duration // see hubLinger; negative: none
	wake   chan struct{} // capacity 1: the watchers changed
	lost   chan struct{} // capacity 1: the client's connection was lost
	fetch  chan struct{} // capacity 1: services to fetch are pending
	feeds  registry.Hub  // the watchers

	mu sync.Mutex // guards the fields below
	st store
	// stale says an error was reported since the last state: the next list
	// or confirmation delivers every state even if unchanged, to confirm it.
	stale     bool
	losses    int   // failures reported, to tell a confirmation made across one
	lastErr   error // the last failure reported
	running   bool  // the follower runs
	following bool  // it follows the stream (it confirms states after a loss)
	ended     error // set by endAll: no more watchers
	lists     int   // lists done, for tests
	listed    int   // records the lists read, for tests
}

func newHub(c *conn, linger time.Duration) *hub {
	if linger == 0 {
		linger = hubLinger
	}
	return &hub{
		c:      c,
		prefix: c.ns + "/",
		linger: linger,
		wake:   make(chan struct{}, 1),
		lost:   make(chan struct{}, 1),
		fetch:  make(chan struct{}, 1),
		st:     newStore(),
	}
}

// poke sends on a capacity-1 channel without blocking.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// subscribe returns a feed of service name ("" for every service), with
// its current state already given when the store holds it. start says the
// follower must be started: no one runs it.
func (h *hub) subscribe(ctx context.Context, name string) (f *registry.Feed, start bool, err error) {
	f = registry.NewFeed(ctx, func() { poke(h.wake) }) // the registry.Hub forgets it
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended != nil {
		f.End(h.ended)
		return nil, false, h.ended
	}
	select {
	case <-f.Done():
		return f, false, nil // ctx already done: Next reports it
	default:
	}
	held := h.st.holds(name)
	if h.stale && h.lastErr != nil && !h.c.ready.Load() {
		// etcd is unreachable: say so now, as to the other watchers. (Once
		// the connection is back the confirmation is a round trip away: the
		// feed waits for it without an error, which a chain restarting its
		// watchers of a recovered tier would count against the tier.)
		f.Fail(h.lastErr)
	}
	// While a failure awaits its confirmation the state may lack what
	// changed meanwhile: the new feed gets its first state with the
	// confirmation (see publishAllLocked).
	var first []*registry.Update
	if h.st.synced && !h.stale && held {
		now := time.Now()
		if name != "" {
			first = append(first, h.st.update(name, now))
		} else {
			for svc := range h.st.state {
				first = append(first, h.st.update(svc, now))
			}
		}
	}
	h.feeds.Add(f, name, first...)
	if !held {
		h.st.want(name)
		poke(h.fetch)
	}
	if !h.running {
		h.running, start = true, true
	}
	return f, start, nil
}

// endAll ends every feed with err (the registry is closing).
func (h *hub) endAll(err error) {
	h.mu.Lock()
	h.ended = err
	h.mu.Unlock()
	h.feeds.EndAll(err)
}

// connLost reports to the watchers that the client's connection was lost,
// at once (clientv3 itself stays silent), and tells the follower, which
// confirms their states once the watch has caught up after the
// reconnection.
func (h *hub) connLost(state connectivity.State) {
	h.mu.Lock()
	running := h.running
	h.mu.Unlock()
	if !running {
		return
	}
	h.c.log.Warn("etcd: connection lost; watchers report it, and their states are confirmed once etcd answers", "state", state.String(), "watchers", h.feeds.Len())
	h.fail(h.c.wrapErr(context.Background(), "watch "+h.prefix, errConnLost))
	poke(h.lost)
}

// idle reports whether no watcher is left (or the registry closes); if so
// the follower is done and the store is dropped (a later watcher lists
// afresh).
func (h *hub) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.feeds.Len() > 0 && h.c.ctx.Err() == nil {
		return false
	}
	h.running = false
	h.st = newStore()
	return true
}

// subscribers returns the number of feeds.
func (h *hub) subscribers() int { return h.feeds.Len() }

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

// awaitsConfirmation reports whether the follower follows the namespace
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

// epoch returns the number of failures reported so far.
func (h *hub) epoch() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.losses
}

// fail reports a transient error to every feed; the next list or
// confirmation confirms their states.
func (h *hub) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stale = true
	h.losses++
	h.lastErr = err
	h.feeds.Fail(err)
}

// wanted returns what a list must read (see store.wanted).
func (h *hub) wanted() (all bool, want map[string]struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.wanted()
}

// toFetch returns the pending services to read one by one (see
// store.toFetch).
func (h *hub) toFetch() (names []string, resync bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.toFetch()
}

// heldNames returns the services held (see store.heldNames).
func (h *hub) heldNames() (all bool, names []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.heldNames()
}

// relisted takes a list's result (see store.replace), read records of the
// namespace, and publishes every state that may have changed: all of them,
// even unchanged, after a reported failure.
func (h *hub) relisted(state map[string]map[string]*registry.Instance, rev int64, all bool, want map[string]struct{}, read int) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	forget := h.stale
	h.stale = false
	old := h.st.replace(state, rev, all, want)
	h.lists++
	h.listed += read
	h.publishAllLocked(now, forget, old)
}

// readAlone takes the read of service name alone at revision rev (see
// store.setService).
func (h *hub) readAlone(name string, m map[string]*registry.Instance, rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.st.setService(name, m, rev)
}

// fetched gives the watchers of service name, read alone, their first
// state, unless a failure awaits its confirmation (which will). It reports
// whether the service is empty.
func (h *hub) fetched(name string) (empty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stale {
		h.feeds.Deliver(h.st.update(name, time.Now()), registry.Delivery{To: registry.Named})
	}
	return len(h.st.state[name]) == 0
}

// failService reports a failed read of service name to its watchers.
func (h *hub) failService(name string, err error) {
	h.feeds.FailService(name, registry.Named, err)
}

// apply applies a watch response's events, at revision rev, and publishes
// each changed service's state once.
func (h *hub) apply(evs []event, rev int64) {
	now := time.Now()
	changed := make(map[string]struct{})
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		if h.st.apply(ev) {
			changed[ev.name] = struct{}{}
		}
	}
	h.st.rev = rev
	for name := range changed {
		// A service that became empty is forgotten once published.
		h.feeds.Publish(h.st.update(name, now))
		h.st.dropEmpty(name)
	}
}

// progress handles a progress notification: every event up to rev has been
// applied. It confirms nothing: one may have been sent before a loss.
func (h *hub) progress(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.st.rev = max(h.st.rev, rev)
}

// confirm ends the wait for a confirmation after a reported failure, and
// publishes every state again, unchanged ones included, unless another
// failure was reported since epoch (then the next reconnection confirms).
func (h *hub) confirm(epoch int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.losses != epoch {
		return false
	}
	h.stale = false
	h.publishAllLocked(time.Now(), true, nil)
	return true
}

// publishAllLocked delivers every watched service's state, and to the
// watch-alls every service's, including those only in old (a previous
// state, whose services may have gone). forget makes the feeds deliver
// states even if unchanged, to confirm them after a reported failure.
func (h *hub) publishAllLocked(now time.Time, forget bool, old map[string]map[string]*registry.Instance) {
	for _, name := range h.feeds.Services() {
		if h.st.holds(name) { // else it gets its first state when fetched
			h.feeds.Deliver(h.st.update(name, now), registry.Delivery{To: registry.Named, Again: forget})
		}
	}
	if h.st.allHeld && h.feeds.Watching("") > 0 {
		for name := range h.st.names(old) {
			h.feeds.Deliver(h.st.update(name, now), registry.Delivery{To: registry.All, Again: forget})
		}
	}
}
