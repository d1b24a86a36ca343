package registry

import (
	"maps"
	"slices"
	"sync"
)

// Hub fans states out to the feeds of a backend's watchers: the watchers of
// one service and the watch-alls. Every adapter fans out through one; it
// applies these rules:
//
//   - A watch-all hears of a service once the service has instances, and
//     from then on of every state, down to the empty one when its last
//     instance leaves; a service it never saw with instances is not
//     announced empty.
//   - Each feed gets its own Update with its own slice of the Instances,
//     which the feeds share: neither the producer nor anyone else may
//     modify those Instances afterwards.
//   - A feed that ends leaves the hub by itself.
//
// A producer that must deliver states in order calls the Hub under its own
// lock: the Hub's methods never block, and they call no Feed while holding
// the Hub's lock. The zero Hub is ready; it is safe for concurrent use.
type Hub struct {
	mu    sync.Mutex                    // guards the fields below
	feeds map[*Feed]*hubFeed            // every subscribed feed
	named map[string]map[*Feed]*hubFeed // service -> its watchers
	all   map[*Feed]*hubFeed            // the watch-alls
	adds  uint64                        // feeds added so far
}

// hubFeed is a subscribed feed's place in a Hub.
type hubFeed struct {
	service string          // watched service; "" for a watch-all
	added   uint64          // Hub.adds once it was added
	shown   map[string]bool // watch-all: services last given with instances
}

// Reach selects the feeds a Hub's Deliver or FailService reaches.
type Reach uint8

const (
	// Named reaches the watchers of the service.
	Named Reach = 1 << iota
	// All reaches the watch-alls.
	All
)

// Delivery says how a Hub delivers one state.
type Delivery struct {
	// To selects the feeds. If zero, Named|All.
	To Reach
	// Again delivers the state even to a feed whose last delivered state
	// of the service is equal: a confirmation after a reported failure
	// (see Feed.Forget).
	Again bool
	// Before, when not zero, limits the delivery to the feeds added before
	// this Mark was taken: the state was read after that, and a feed added
	// later waits for a read of its own.
	Before uint64
}

// Add subscribes f to service ("" for every service) and gives it the first
// states, in order; a watch-all's count as shown (see Hub). A feed that has
// ended is not added; one that ends later leaves by itself.
func (h *Hub) Add(f *Feed, service string, first ...*Update) {
	h.mu.Lock()
	if !f.onEnd(func() { h.Remove(f) }) {
		h.mu.Unlock()
		return
	}
	if h.feeds == nil {
		h.feeds = make(map[*Feed]*hubFeed)
		h.named = make(map[string]map[*Feed]*hubFeed)
		h.all = make(map[*Feed]*hubFeed)
	}
	h.adds++
	s := &hubFeed{service: service, added: h.adds}
	h.feeds[f] = s
	if service == "" {
		s.shown = make(map[string]bool)
		h.all[f] = s
		for _, u := range first {
			if len(u.Instances) > 0 {
				s.shown[u.Service] = true
			}
		}
	} else {
		m := h.named[service]
		if m == nil {
			m = make(map[*Feed]*hubFeed)
			h.named[service] = m
		}
		m[f] = s
	}
	h.mu.Unlock()
	for _, u := range first {
		f.Publish(u)
	}
}

// States returns the first states of a watcher of service, for Add: the
// state of service, or for a watch-all ("") the states of names, in order.
// state makes one service's Update.
func States(service string, names []string, state func(service string) *Update) []*Update {
	if service != "" {
		return []*Update{state(service)}
	}
	out := make([]*Update, 0, len(names))
	for _, n := range names {
		out = append(out, state(n))
	}
	return out
}

// Remove unsubscribes f.
func (h *Hub) Remove(f *Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.feeds[f]
	if s == nil {
		return
	}
	delete(h.feeds, f)
	if s.service == "" {
		delete(h.all, f)
		return
	}
	m := h.named[s.service]
	delete(m, f)
	if len(m) == 0 {
		delete(h.named, s.service)
	}
}

// Mark returns the hub's position among its Adds, for Delivery.Before:
// taken before a state is read, it makes the state reach only the feeds
// added before the read started. It is never 0.
func (h *Hub) Mark() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.adds + 1
}

// Publish gives u to the watchers of u.Service and to the watch-alls:
// Deliver(u, Delivery{}).
func (h *Hub) Publish(u *Update) { h.Deliver(u, Delivery{}) }

// Deliver gives u to the feeds d selects, each its own copy (see Hub).
func (h *Hub) Deliver(u *Update, d Delivery) {
	to := d.To
	if to == 0 {
		to = Named | All
	}
	nonEmpty := len(u.Instances) > 0
	var targets []*Feed
	h.mu.Lock()
	if to&Named != 0 {
		for f, s := range h.named[u.Service] {
			if d.Before == 0 || s.added < d.Before {
				targets = append(targets, f)
			}
		}
	}
	if to&All != 0 {
		for f, s := range h.all {
			switch {
			case d.Before != 0 && s.added >= d.Before:
			case nonEmpty:
				s.shown[u.Service] = true
				targets = append(targets, f)
			case s.shown[u.Service]:
				delete(s.shown, u.Service)
				targets = append(targets, f)
			}
		}
	}
	h.mu.Unlock()
	for _, f := range targets {
		if d.Again {
			f.Forget(u.Service)
		}
		c := *u
		c.Instances = slices.Clone(u.Instances)
		f.Publish(&c)
	}
}

// Fail reports a transient error to every subscribed feed.
func (h *Hub) Fail(err error) {
	h.mu.Lock()
	targets := slices.Collect(maps.Keys(h.feeds))
	h.mu.Unlock()
	for _, f := range targets {
		f.Fail(err)
	}
}

// FailService reports a transient error about service to the feeds to
// selects: its watchers (Named) and the watch-alls (All). If to is zero,
// both.
func (h *Hub) FailService(service string, to Reach, err error) {
	if to == 0 {
		to = Named | All
	}
	var targets []*Feed
	h.mu.Lock()
	if to&Named != 0 {
		targets = slices.AppendSeq(targets, maps.Keys(h.named[service]))
	}
	if to&All != 0 {
		targets = slices.AppendSeq(targets, maps.Keys(h.all))
	}
	h.mu.Unlock()
	for _, f := range targets {
		f.Fail(err)
	}
}

// EndAll ends every subscribed feed with err and forgets them.
func (h *Hub) EndAll(err error) {
	h.mu.Lock()
	feeds := h.feeds
	h.feeds, h.named, h.all = nil, nil, nil
	h.mu.Unlock()
	for f := range feeds {
		f.End(err)
	}
}

// Len returns how many feeds are subscribed.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.feeds)
}

// Watching returns how many feeds watch service; "" counts the watch-alls.
func (h *Hub) Watching(service string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if service == "" {
		return len(h.all)
	}
	return len(h.named[service])
}

// Services returns the services that feeds watch by name, sorted.
func (h *Hub) Services() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.named))
}

// Shown reports whether a watch-all was last given instances of service:
// the service's next state, even empty, is news to it.
func (h *Hub) Shown(service string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.all {
		if s.shown[service] {
			return true
		}
	}
	return false
}
