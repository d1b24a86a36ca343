package zk

import (
	"errors"
	"fmt"
	"sync"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// subscription is one Watch: a feed and the service it watches ("" for all).
type subscription struct {
	name  string
	feed  *registry.Feed // set by subscribe; guarded by watchHub.mu until then
	ended bool           // guarded by watchHub.mu
}

// queued is a watch event of connection cs; gen is its service's event
// count (see watchHub.gens).
type queued struct {
	cs  *connState
	ev  gozk.Event
	gen uint64
}

// watchHub is the one goroutine that serves every watcher of a Registry. It
// keeps a cache of the watched services (their children, and each child's
// decoded data) and the ZooKeeper watches that keep it current: go-zookeeper's
// event callback queues each fired watch's event (by path), and the hub reads
// only what the events name -- a changed child's data, a service's children
// list -- so its work is linear in the changes, not in the instances. New
// children are read with up to parallelism requests in flight on the one
// connection. After a batch of events, each changed service's complete state
// is published once to its watchers.
//
// On a connection passed in Config.Client there is no event callback: each
// armed watch's channel is forwarded by a small goroutine instead, which ends
// when the watch fires or the Registry closes.
type watchHub struct {
	r    *Registry
	wake chan struct{} // capacity 1

	mu      sync.Mutex // guards the fields below
	events  []queued
	added   []*subscription
	removed []*subscription
	cache
}

func newWatchHub(r *Registry) *watchHub {
	return &watchHub{r: r, wake: make(chan struct{}, 1), cache: newCache()}
}

// kick wakes the hub's goroutine.
func (h *watchHub) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// push queues a watch event of connection cs. It never blocks.
func (h *watchHub) push(cs *connState, ev gozk.Event) {
	svc, _, _ := h.r.root.split(ev.Path)
	h.mu.Lock()
	var gen uint64
	if svc != "" {
		h.gens[svc]++
		gen = h.gens[svc]
		delete(h.current, svc)
	}
	h.events = append(h.events, queued{cs, ev, gen})
	h.mu.Unlock()
	h.kick()
}

func (h *watchHub) subscribe(sub *subscription, f *registry.Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sub.ended {
		return
	}
	sub.feed = f
	h.added = append(h.added, sub)
	h.kick()
}

func (h *watchHub) unsubscribe(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sub.ended = true
	if sub.feed != nil {
		h.removed = append(h.removed, sub)
		h.kick()
	}
}

// take returns and clears what was queued.
func (h *watchHub) take() (evs []queued, added, removed []*subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	evs, added, removed = h.events, h.added, h.removed
	h.events, h.added, h.removed = nil, nil, nil
	return evs, added, removed
}

// forward turns a watch channel of a connection without event callback into
// a queued event.
func (h *watchHub) forward(cs *connState, ch <-chan gozk.Event) {
	if cs.owned || ch == nil {
		return
	}
	r := h.r
	r.wg.Add(1) // called by the hub's goroutine, which is in wg
	go func() {
		defer r.wg.Done()
		select {
		case ev, ok := <-ch:
			if ok {
				h.push(cs, ev)
			}
		case <-r.ctx.Done():
		}
	}()
}

// hubState is what the hub's goroutine knows; only it touches it.
type hubState struct {
	cs      *connState // the connection the watches are armed on
	session int64      // its session
	lost    bool       // the connection loss was reported to the watchers
	epoch   int64      // cs.sessions when last seen with a session
	everHad bool       // a session was seen: a loss is reported at once
	down    time.Time  // since when there is no session (zero with one)

	alls      int  // watch-all subscriptions
	rootArmed bool // a children (or exists) watch on the root is set

	svcs     map[string]*svcState
	needList map[string]struct{}            // services whose children must be read
	needRead map[string]map[string]struct{} // service -> instance IDs to read
	dirty    map[string]struct{}            // services changed since published
	gone     []string                       // watch-all: services that disappeared
}

// svcState is what the hub knows of one service.
type svcState struct {
	name     string
	watchers int  // subscriptions to this service
	inRoot   bool // listed under the root (watch-all)
	listed   bool // children (or exists) watch armed, kids current
	known    bool // read completely once: may be published
	failed   bool // the last read failed
	stale    bool // an error was reported: deliver the state again
	rev      int64
	pzxid    int64                         // the service node's Pzxid when last listed
	gen      uint64                        // the last of its events applied (watchHub.gens)
	readFor  time.Time                     // GetService asked for it: kept until then
	kids     map[string]*registry.Instance // by ID; nil value for a malformed node
}

// interesting reports whether the hub must keep s current.
func (s *svcState) interesting(hs *hubState) bool {
	return s.watchers > 0 || hs.alls > 0 && s.inRoot || time.Now().Before(s.readFor)
}

// sweepEvery is how often the hub forgets the services GetService no
// longer asks for.
const sweepEvery = 10 * time.Second

func (h *watchHub) run() {
	r := h.r
	defer r.wg.Done()
	hs := &hubState{
		svcs:     make(map[string]*svcState),
		needList: make(map[string]struct{}),
		needRead: make(map[string]map[string]struct{}),
		dirty:    make(map[string]struct{}),
	}
	b := backoff.Backoff{Max: r.cfg.MaxBackoff}
	var retry *time.Timer
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		changed := r.session.Wait()
		evs, added, removed := h.take()
		wants := h.takeWants()
		if r.ctx.Err() != nil {
			return
		}
		cs := r.cur.Load()
		state, id := cs.conn.State(), cs.conn.SessionID()
		has := state == gozk.StateHasSession
		if cs != hs.cs || has && hs.session != 0 && id != hs.session {
			h.reset(hs, cs) // new connection or new session: no watch is armed any more
		}
		if e := cs.sessions.Load(); has && hs.everHad && e != hs.epoch && !hs.lost {
			// Reconnected between two looks: confirm everything, as after
			// a loss that was seen.
			hs.lost = true
			h.failAll(hs, func(name string) error { return lostErr(name, gozk.StateDisconnected) })
		}
		if has {
			hs.session, hs.everHad, hs.down, hs.epoch = id, true, time.Time{}, cs.sessions.Load()
		} else if hs.down.IsZero() {
			hs.down = time.Now()
		}
		for _, sub := range added {
			h.add(hs, sub)
			if hs.lost {
				sub.feed.Fail(lostErr(sub.name, state))
			}
		}
		for _, sub := range removed {
			h.remove(hs, sub)
		}
		for _, n := range wants {
			s := h.service(hs, n)
			s.readFor = time.Now().Add(readInterest)
			hs.dirty[n] = struct{}{} // made current once read
		}
		for _, q := range evs {
			h.apply(hs, q)
		}
		var err error
		var wait time.Duration // without a session yet: until the loss is reported
		switch {
		case !has:
			// A Registry that never had a session reports it after
			// Config.Timeout, as a read would fail.
			if wait = time.Until(hs.down.Add(r.cfg.Timeout)); !hs.lost && (hs.everHad || wait <= 0) {
				hs.lost, wait = true, 0
				h.failAll(hs, func(name string) error { return lostErr(name, state) })
			}
		default:
			if hs.lost { // same session back: children again, data watches were re-sent
				hs.lost = false
				hs.rootArmed = false
				for n, s := range hs.svcs {
					s.listed, s.stale = false, true
					hs.needList[n] = struct{}{}
				}
			}
			err = h.sync(hs)
			h.publish(hs)
		}
		var retryC <-chan time.Time
		if retry != nil {
			retry.Stop()
			retry = nil
		}
		if err != nil {
			d := b.Next()
			r.log.Warn("zookeeper: watch read failed", "attempt", b.Attempts(), "retry_in", d, "err", err)
			retry = time.NewTimer(d)
			retryC = retry.C
		} else if has {
			b.Reset()
		} else if wait > 0 && !hs.lost {
			retry = time.NewTimer(wait)
			retryC = retry.C
		}
		select {
		case <-h.wake:
		case <-changed:
		case <-retryC:
		case <-sweep.C:
			for _, s := range hs.svcs {
				h.drop(hs, s)
			}
		case <-r.ctx.Done():
			if retry != nil {
				retry.Stop()
			}
			return
		}
	}
}

// reset forgets every armed watch: the hub now works on connection cs, whose
// session holds none of them. Everything is read again and confirmed.
func (h *watchHub) reset(hs *hubState, cs *connState) {
	hs.cs, hs.session = cs, 0
	hs.rootArmed = false
	h.forgetCurrent()
	for n, s := range hs.svcs {
		s.listed, s.stale, s.rev, s.pzxid = false, true, 0, 0
		hs.needList[n] = struct{}{}
		reads := make(map[string]struct{}, len(s.kids))
		for id := range s.kids {
			reads[id] = struct{}{}
		}
		hs.needRead[n] = reads
	}
}

// service returns the state of service n, creating it.
func (h *watchHub) service(hs *hubState, n string) *svcState {
	s := hs.svcs[n]
	if s == nil {
		// Events before now are in what the listing below reads.
		s = &svcState{name: n, kids: make(map[string]*registry.Instance), gen: h.genOf(n)}
		hs.svcs[n] = s
		hs.needList[n] = struct{}{}
	}
	return s
}

// drop forgets service n when nothing needs it any more. Its ZooKeeper
// watches fire once more at most and are then ignored.
func (h *watchHub) drop(hs *hubState, s *svcState) {
	if s.interesting(hs) {
		return
	}
	delete(hs.svcs, s.name)
	h.dropCurrent(s.name)
	delete(hs.needList, s.name)
	delete(hs.needRead, s.name)
	delete(hs.dirty, s.name)
}

func (h *watchHub) add(hs *hubState, sub *subscription) {
	if sub.name == "" {
		hs.alls++
		for _, s := range hs.svcs { // syncRoot marks those it finds
			if s.inRoot {
				hs.dirty[s.name] = struct{}{}
			}
		}
		return
	}
	s := h.service(hs, sub.name)
	s.watchers++
	if s.known && !s.failed && s.listed && len(hs.needRead[s.name]) == 0 {
		sub.feed.Publish(h.update(s))
		return
	}
	hs.dirty[s.name] = struct{}{} // published to every watcher once read
}

func (h *watchHub) remove(hs *hubState, sub *subscription) {
	if sub.name == "" {
		hs.alls--
		if hs.alls == 0 {
			hs.rootArmed = false // listed again for the next watch-all
			for _, s := range hs.svcs {
				s.inRoot = false
				h.drop(hs, s)
			}
		}
		return
	}
	if s := hs.svcs[sub.name]; s != nil {
		s.watchers--
		h.drop(hs, s)
	}
}

// apply notes what a fired watch says must be read again.
func (h *watchHub) apply(hs *hubState, q queued) {
	ev := q.ev
	svc, id, ok := h.r.root.split(ev.Path)
	if !ok {
		return
	}
	if svc == "" { // the root
		hs.rootArmed = false
		return
	}
	s := hs.svcs[svc]
	if s == nil {
		return
	}
	if q.gen > s.gen { // its state is made current again once published
		s.gen = q.gen
		hs.dirty[svc] = struct{}{}
	}
	if q.cs != hs.cs {
		return // a watch of an older connection
	}
	if id == "" { // the service node: its children, or its existence
		s.listed = false
		hs.needList[svc] = struct{}{}
		return
	}
	if _, known := s.kids[id]; !known {
		return // the children listing brings it
	}
	switch ev.Type {
	case gozk.EventNodeDeleted:
		delete(s.kids, id)
		delete(hs.needRead[svc], id)
		hs.dirty[svc] = struct{}{}
	default: // data changed, or the watch is gone: read it again
		reads := hs.needRead[svc]
		if reads == nil {
			reads = make(map[string]struct{})
			hs.needRead[svc] = reads
		}
		reads[id] = struct{}{}
	}
}

// failAll reports err(name) to every watcher and marks every state stale.
func (h *watchHub) failAll(hs *hubState, err func(name string) error) {
	h.forgetCurrent()
	for _, s := range hs.svcs {
		s.stale = true
		h.r.feeds.FailService(s.name, registry.Named, err(s.name))
	}
	h.r.feeds.FailService("", registry.All, err(""))
}

// fail reports err to the watchers of s (and the watch-alls).
func (h *watchHub) fail(hs *hubState, s *svcState, err error) {
	s.failed, s.stale = true, true
	h.setErr(s.name, err)
	h.r.feeds.FailService(s.name, registry.Named, h.r.fail(fmt.Sprintf("watch %s", registry.Quote(s.name)), err))
	if s.inRoot {
		h.r.feeds.FailService(s.name, registry.All, h.r.fail(`watch ""`, fmt.Errorf("service %s: %w", registry.Quote(s.name), err)))
	}
}

// update is the current state of s as an Update. Its Instances are shared
// with the cache and never modified: feeds sort their own slice and hand
// their consumers copies.
func (h *watchHub) update(s *svcState) *registry.Update {
	ins := make([]*registry.Instance, 0, len(s.kids))
	for _, in := range s.kids {
		if in != nil {
			ins = append(ins, in)
		}
	}
	registry.SortInstances(ins)
	return &registry.Update{Service: s.name, Instances: ins, Source: Source, Revision: s.rev, Time: time.Now()}
}

// publish hands each changed, completely read service's state to its
// watchers through the registry's feeds. A watch-all does not hear of
// services it never saw with instances (registry.Hub).
func (h *watchHub) publish(hs *hubState) {
	now := time.Now()
	for _, n := range hs.gone {
		h.r.feeds.Deliver(&registry.Update{Service: n, Instances: []*registry.Instance{}, Source: Source, Time: now}, registry.Delivery{To: registry.All})
	}
	hs.gone = nil
	for _, s := range hs.svcs {
		_, dirty := hs.dirty[s.name]
		if !dirty && !s.stale || s.failed || !s.listed || len(hs.needRead[s.name]) > 0 {
			continue
		}
		delete(hs.dirty, s.name)
		stale := s.stale
		s.stale, s.known = false, true
		u := h.update(s)
		h.setCurrent(s.name, u, s.gen)
		h.r.feeds.Deliver(u, registry.Delivery{To: registry.Named, Again: stale})
		if hs.alls > 0 && s.inRoot {
			h.r.feeds.Deliver(u, registry.Delivery{To: registry.All, Again: stale})
		}
	}
}

// sync reads what the watches and subscriptions asked for: the root's
// children (watch-all), the children of listed services, the data of new or
// changed instances. It returns the errors met; what was read is kept.
func (h *watchHub) sync(hs *hubState) error {
	var errs []error
	if hs.alls > 0 && !hs.rootArmed {
		if err := h.syncRoot(hs); err != nil {
			h.failAll(hs, func(name string) error { return h.r.fail(fmt.Sprintf("watch %s", registry.Quote(name)), err) })
			return err
		}
	}
	for try := 0; try < appearTries && len(hs.needList) > 0; try++ {
		errs = append(errs, h.listServices(hs)...)
	}
	return errors.Join(append(errs, h.readKids(hs)...)...)
}

// appearTries bounds how often a read retries at once when the node it
// found missing was created before the exists watch could be set.
const appearTries = 3

func (h *watchHub) syncRoot(hs *hubState) error {
	r := h.r
	cs := hs.cs
	var names []string
	r.watching()
	for try := 1; ; try++ {
		var ch <-chan gozk.Event
		err := h.call(func() error {
			var err error
			names, _, ch, err = cs.conn.ChildrenW(string(r.root))
			return err
		})
		if err == nil {
			h.forward(cs, ch)
			break
		}
		if !errors.Is(err, gozk.ErrNoNode) {
			return err
		}
		var ok bool
		err = h.call(func() error {
			var err error
			ok, _, ch, err = cs.conn.ExistsW(string(r.root))
			return err
		})
		if err != nil {
			return err
		}
		if !ok {
			h.forward(cs, ch)
			names = nil
			break
		}
		if try == appearTries {
			return fmt.Errorf("%s keeps appearing and disappearing", r.root)
		}
	}
	hs.rootArmed = true
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if registry.ValidateName(n) != nil {
			continue // not a service node of ours
		}
		seen[n] = true
		if s := h.service(hs, n); !s.inRoot {
			s.inRoot = true
			hs.dirty[n] = struct{}{} // newly listed for the watch-alls
		}
	}
	for n, s := range hs.svcs {
		if s.inRoot && !seen[n] {
			s.inRoot = false
			hs.gone = append(hs.gone, n) // for the watch-alls that saw it
			h.drop(hs, s)
		}
	}
	return nil
}

// call runs f through Registry.do, bounded by Config.Timeout: a read
// queued on a connection that is being re-established must not hold the
// hub longer than that.
func (h *watchHub) call(f func() error) error {
	ctx, cancel := h.r.bound(h.r.ctx)
	defer cancel()
	return h.r.do(ctx, f)
}
