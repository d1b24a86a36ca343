package zk

import (
	"time"

	"github.com/regchain/regchain/registry"
)

// readInterest is how long the watch hub keeps a service that GetService
// asked for current (read once, then kept by its watches) after the last
// GetService of it. Reads of a service are answered from that state: a
// large service is read once, not at every call, and a read that outlived
// its caller's ctx is not lost (the next call finds its result).
const readInterest = time.Minute

// cache is the part of the watch hub that GetService reads; guarded by
// watchHub.mu.
type cache struct {
	current map[string]*registry.Update // complete states GetService answers from
	// gens counts the events of each service. An event forgets the
	// service's current state at once -- ZooKeeper delivers the event of a
	// write before the write's answer, so a read after one's own write
	// never answers from a state without it -- and a state is made current
	// only if no event came after those it was read for.
	gens    map[string]uint64
	errs    map[string]error     // the last failed read of a service, for one GetService
	asked   map[string]time.Time // when GetService last renewed a service's interest
	wants   []string             // services GetService asked for, for the hub
	changed chan struct{}        // closed and replaced when current or errs change
}

func newCache() cache {
	return cache{
		current: make(map[string]*registry.Update),
		gens:    make(map[string]uint64),
		errs:    make(map[string]error),
		asked:   make(map[string]time.Time),
		changed: make(chan struct{}),
	}
}

// signalLocked wakes the GetService calls waiting for a state.
func (c *cache) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// setCurrent records the state u of svc, read after its event gen, unless
// another event came since.
func (h *watchHub) setCurrent(svc string, u *registry.Update, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gens[svc] == gen {
		h.current[svc] = u
		delete(h.errs, svc)
		h.signalLocked()
	}
}

// genOf returns the event count of svc.
func (h *watchHub) genOf(svc string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gens[svc]
}

// setErr records a failed read of svc for the GetService calls waiting.
func (h *watchHub) setErr(svc string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.current, svc)
	if _, asked := h.asked[svc]; asked {
		h.errs[svc] = err
		h.signalLocked()
	}
}

// dropCurrent forgets the state of svc (the hub no longer keeps it).
func (h *watchHub) dropCurrent(svc string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.current, svc)
	delete(h.asked, svc)
}

// forgetCurrent forgets every state.
func (h *watchHub) forgetCurrent() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.current)
}

// takeWants returns and clears the services GetService asked for.
func (h *watchHub) takeWants() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.wants
	h.wants = nil
	return w
}

// lookup returns copies of the instances of svc if the hub holds its
// state (ok), or the error of its last read, once. Otherwise it asks the
// hub to read and keep svc, and returns a channel closed at the next change.
// It renews the interest in svc.
func (h *watchHub) lookup(svc string) (ins []*registry.Instance, ok bool, changed <-chan struct{}, err error) {
	h.mu.Lock()
	now := time.Now()
	if last, asked := h.asked[svc]; !asked || now.Sub(last) > readInterest/4 {
		h.asked[svc] = now
		h.wants = append(h.wants, svc)
		defer h.kick()
	}
	u := h.current[svc]
	if u == nil {
		err, failed := h.errs[svc]
		delete(h.errs, svc)
		changed := h.changed
		h.mu.Unlock()
		return nil, failed, changed, err
	}
	h.mu.Unlock()
	ins = make([]*registry.Instance, len(u.Instances))
	for i, in := range u.Instances {
		ins[i] = in.Clone()
	}
	return ins, true, nil, nil
}
