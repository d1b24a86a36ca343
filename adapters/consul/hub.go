package consul

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// Bounds of the watch hub (see doc.go, "Watch").
const (
	// maxReads is how many service reads the hub runs at once. With its two
	// blocking queries, a registry's watchers never hold more than
	// maxReads+2 connections to the agent.
	maxReads = 4

	// A full re-read (every watched service read again, for a catalog
	// change that does not say which service changed) starts at least
	// minFullGap after the previous one ended, and at least fullGapFactor
	// times as long as that one took, and late enough that full re-reads
	// average at most fullReadRate reads a second; never more than
	// maxFullGap after it.
	minFullGap    = time.Second
	maxFullGap    = 30 * time.Second
	fullGapFactor = 9
	fullReadRate  = 50

	// maxFilterNames is how many watched services the check query names in
	// its filter; with more (or with a watch-all) it asks for every check.
	maxFilterNames = 256
)

// Read priorities, most urgent first.
const (
	prioNone    = iota
	prioInitial // a new watcher waits for its first state
	prioChanged // the service's checks changed, it left the catalog, or its last read failed
	prioFull    // part of a full re-read
)

// hub multiplexes every watcher of one Registry onto two blocking queries
// and at most maxReads reads at a time:
//
//   - /v1/health/state/any (filtered to the watched services unless a
//     watch-all runs): its index moves on any check change; a fingerprint of
//     each service's checks (and of their nodes' checks) says which services
//     changed, and only those are read again;
//   - /v1/catalog/services: its index moves on any registration change,
//     including ones that touch no check (new Meta or addresses); it lists
//     the services for watch-alls and, when its index moves, asks for a full
//     re-read, rate-limited.
//
// A read is GET /v1/health/service/<name>?passing, non-blocking; its result
// goes, through the registry's feeds (a registry.Hub), to the service's
// watchers and the watch-alls that subscribed before it started, whose
// Feeds drop what they already delivered. The hub starts with its first
// watcher and stops with its last one (or Close). It is safe for
// concurrent use.
type hub struct {
	r      *Registry
	ctx    context.Context // ends when the hub stops
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: the scheduler has something to look at
	done   chan struct{} // closed when every goroutine of the hub has returned
	seed   maphash.Seed
	reads  sync.WaitGroup // read goroutines

	mu          sync.Mutex // guards the fields below
	stopped     bool
	svcs        map[string]*watched // services watched, by name
	inflight    int                 // reads running
	healthOK    bool                // the check loop answered or failed once
	catalogOK   bool                // the catalog loop answered or failed once
	fps         map[string]uint64   // service -> fingerprint of its checks, last check answer
	nodeFPs     map[string]uint64   // node -> fingerprint of its node checks, last check answer
	catalog     map[string]bool     // valid service names, last catalog answer
	fullWanted  bool                // a full re-read is due
	fullRunning bool
	fullStart   time.Time
	fullReads   int       // services in the running full re-read
	nextFull    time.Time // no full re-read starts before
}

// watched is the hub's state of one service. Guarded by hub.mu, except
// warned (used by the read in progress only).
type watched struct {
	name string

	initial   bool // a new watcher waits for its first state
	forced    bool // read again whatever the fingerprint says
	inFull    bool // part of the running full re-read
	departing bool // gone from the catalog: one last read tells the watch-alls
	reading   bool
	fp        uint64 // fingerprint of the checks when the last successful read started
	failing   bool   // the last read failed: retry at retryAt
	retryAt   time.Time
	b         backoff.Backoff

	warned map[string]bool // undecodable entries and ACL filtering already logged
}

func newHub(r *Registry) *hub {
	ctx, cancel := context.WithCancel(r.ctx)
	return &hub{
		r:      r,
		ctx:    ctx,
		cancel: cancel,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		seed:   maphash.MakeSeed(),
		svcs:   make(map[string]*watched),
	}
}

func (h *hub) newWatched(name string) *watched {
	return &watched{
		name:   name,
		b:      backoff.Backoff{Base: 100 * time.Millisecond, Max: watchRetryMax},
		warned: make(map[string]bool),
	}
}

// poke wakes the scheduler.
func (h *hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// add subscribes f to service name ("" for every service): the services
// it needs are read at once, for it. A feed that has ended is not added (its
// onStop, Registry.unwatched, stops the hub if it was the last).
func (h *hub) add(f *registry.Feed, name string) {
	h.mu.Lock()
	h.r.feeds.Add(f, name)
	if name == "" {
		for _, st := range h.svcs {
			st.initial = true // a state read before f subscribed is not for f
		}
	} else {
		st := h.svcs[name]
		if st == nil {
			st = h.newWatched(name)
			h.svcs[name] = st
		}
		st.initial = true
	}
	h.reconcileLocked()
	h.mu.Unlock()
	h.poke()
}

// removed is told that a watcher left. It reports whether that stopped the
// hub (no watcher is left).
func (h *hub) removed() bool {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return false
	}
	if h.r.feeds.Len() == 0 {
		h.stopped = true
		h.mu.Unlock()
		h.cancel()
		return true
	}
	h.reconcileLocked()
	h.mu.Unlock()
	h.poke()
	return false
}

// wantLocked reports whether service name has watchers: named ones, or
// watch-alls while the catalog or the checks list it.
func (h *hub) wantLocked(name string) bool {
	if h.r.feeds.Watching(name) > 0 {
		return true
	}
	if h.r.feeds.Watching("") == 0 || registry.ValidateName(name) != nil {
		return false
	}
	_, checked := h.fps[name]
	return h.catalog[name] || checked
}

// reconcileLocked brings the set of watched services in line with the
// subscribers, the catalog and the checks: a service new to a watch-all is
// read at once; one that no one watches any more is dropped, after a last
// read if a watch-all was shown instances of it (so that it sees the
// service go empty).
func (h *hub) reconcileLocked() {
	if h.r.feeds.Watching("") > 0 {
		add := func(name string) {
			if h.svcs[name] == nil && registry.ValidateName(name) == nil {
				st := h.newWatched(name)
				st.initial = true
				h.svcs[name] = st
			}
		}
		for name := range h.catalog {
			add(name)
		}
		for name := range h.fps {
			add(name)
		}
	}
	for name, st := range h.svcs {
		switch {
		case h.wantLocked(name):
			st.departing = false
		case h.r.feeds.Shown(name):
			st.departing = true
		default:
			delete(h.svcs, name)
		}
	}
}

// run is the hub's scheduler: it starts the two blocking loops, then the
// reads the services need, at most maxReads at a time, until the hub stops.
func (h *hub) run() {
	defer h.r.wg.Done()
	defer close(h.done)
	var loops sync.WaitGroup
	defer loops.Wait()
	defer h.reads.Wait()
	loops.Go(h.watchChecks)
	loops.Go(h.watchCatalog)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Stop()
		if wait := h.schedule(time.Now()); wait > 0 {
			timer.Reset(wait)
		}
		select {
		case <-h.ctx.Done():
			return
		case <-h.wake:
		case <-timer.C:
		}
	}
}

// schedule starts the reads that are due and returns when to look again
// for those that will be (0: when something happens).
func (h *hub) schedule(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Until both loops have answered (or failed) once, a read could miss a
	// change their first answers already include.
	if h.stopped || !h.healthOK || !h.catalogOK {
		return 0
	}
	var wait time.Duration
	later := func(d time.Duration) {
		if wait == 0 || d < wait {
			wait = d
		}
	}
	if h.fullRunning && !h.fullPendingLocked() {
		h.fullRunning = false
		gap := max(minFullGap, fullGapFactor*now.Sub(h.fullStart), time.Duration(h.fullReads)*time.Second/fullReadRate)
		h.nextFull = now.Add(min(maxFullGap, gap))
	}
	if h.fullWanted && !h.fullRunning {
		if d := h.nextFull.Sub(now); d > 0 {
			later(d)
		} else {
			h.fullWanted, h.fullReads = false, 0
			for _, st := range h.svcs {
				if !st.failing { // retried anyway
					st.forced, st.inFull = true, true
					h.fullRunning, h.fullStart = true, now
					h.fullReads++
				}
			}
		}
	}
	var ready [prioFull + 1][]*watched
	for _, st := range h.svcs {
		p, retry := h.priorityLocked(st, now)
		if p != prioNone {
			ready[p] = append(ready[p], st)
		} else if retry > 0 {
			later(retry)
		}
	}
	for _, list := range ready[prioInitial:] {
		for _, st := range list {
			if h.inflight >= maxReads {
				return wait // a read ending wakes the scheduler
			}
			h.startLocked(st)
		}
	}
	return wait
}

// fullPendingLocked reports whether a read of the running full re-read is
// still to come or under way.
func (h *hub) fullPendingLocked() bool {
	for _, st := range h.svcs {
		if st.inFull {
			return true
		}
	}
	return false
}

// priorityLocked returns how urgently st needs a read, or how long until
// its failed read may be retried.
func (h *hub) priorityLocked(st *watched, now time.Time) (int, time.Duration) {
	switch {
	case st.reading:
		return prioNone, 0
	case st.initial:
		return prioInitial, 0
	case st.failing && now.Before(st.retryAt):
		return prioNone, st.retryAt.Sub(now)
	case st.failing, st.departing, st.fp != h.fps[st.name]:
		return prioChanged, 0
	case st.forced:
		return prioFull, 0
	}
	return prioNone, 0
}

// startLocked starts a read of st.
func (h *hub) startLocked(st *watched) {
	h.inflight++
	st.reading = true
	st.initial, st.forced = false, false
	h.reads.Add(1)
	go h.read(st, h.r.feeds.Mark(), h.fps[st.name])
}

// read reads the passing instances of st's service and hands them to its
// watchers and the watch-alls that subscribed before mark (see
// registry.Hub.Mark); fp is the fingerprint of the service's checks when
// it started.
func (h *hub) read(st *watched, mark, fp uint64) {
	defer h.reads.Done()
	defer h.poke()
	ctx, cancel := context.WithTimeout(h.ctx, h.r.cfg.Timeout)
	entries, meta, err := h.r.client.Health().Service(st.name, "", true, h.r.query(ctx))
	cancel()
	var u *registry.Update
	if err == nil {
		ins := h.r.decodeEntries(entries, st.warned)
		if len(ins) == 0 && meta.ResultsFilteredByACLs && !st.warned[""] {
			st.warned[""] = true
			h.r.log.Warn("watch sees no instances: results filtered by ACLs, the token may not read this service", "service", st.name)
		}
		u = &registry.Update{Service: st.name, Instances: ins, Source: Source, Revision: int64(meta.LastIndex), Time: time.Now()}
	}

	h.mu.Lock()
	h.inflight--
	st.reading, st.inFull = false, false
	if h.stopped || h.ctx.Err() != nil || h.svcs[st.name] != st {
		h.mu.Unlock() // no one to tell: the hub stopped or dropped the service
		return
	}
	if err != nil {
		st.failing, st.retryAt = true, time.Now().Add(st.b.Next())
	} else {
		st.failing, st.fp = false, fp
		st.b.Reset()
		// A departing service is dropped after a last read that finds it
		// empty (which tells the watch-alls that saw it), unless watched.
		if st.departing {
			st.departing = false // marked again by the next answer if still gone
			if len(u.Instances) == 0 && !h.wantLocked(st.name) {
				delete(h.svcs, st.name)
			}
		}
	}
	h.mu.Unlock()

	if err != nil {
		h.r.feeds.FailService(st.name, registry.Named|registry.All, fmt.Errorf("consul: watch %s: %w", registry.Quote(st.name), classify(err)))
		return
	}
	// A watch-all hears of a service once it has instances, and then of
	// every state, down to the empty one (registry.Hub).
	h.r.feeds.Deliver(u, registry.Delivery{Before: mark})
}

// loopFailed records a failed query of a blocking loop (ok is its
// answered-once flag) and tells every watcher.
func (h *hub) loopFailed(ok *bool, err error) {
	h.mu.Lock()
	*ok = true
	h.mu.Unlock()
	h.r.feeds.Fail(err)
	h.poke()
}

// watchChecks follows /v1/health/state/any until the hub stops.
func (h *hub) watchChecks() {
	q := blocking{b: backoff.Backoff{Base: 100 * time.Millisecond, Max: watchRetryMax}}
	var filter string
	var last uint64
	first, failed := true, false
	for q.wait(h.ctx) {
		if f := h.checkFilter(); f != filter {
			// Another question: ask it afresh. A change meanwhile returned
			// the query in flight, so nothing is missed.
			filter, q.index = f, 0
		}
		opts, cancel := h.r.options(h.ctx, &q)
		opts.Filter = filter
		checks, meta, err := h.r.client.Health().State(consulapi.HealthAny, opts)
		cancel()
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			h.loopFailed(&h.healthOK, fmt.Errorf("consul: watch: checks: %w", classify(err)))
			failed = true
			if !q.failed(h.ctx) {
				return
			}
			continue
		}
		// After a failure or a reset (a new cluster) anything may have
		// changed, not only what the checks show.
		h.checksAnswered(checks, failed || !first && meta.LastIndex < last)
		first, failed, last = false, false, meta.LastIndex
		q.ok(meta.LastIndex)
	}
}

// checkFilter returns the filter of the check query: the node checks and
// those of the services watched by name, or "" (every check) for a
// watch-all or more than maxFilterNames services.
func (h *hub) checkFilter() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r.feeds.Watching("") > 0 {
		return ""
	}
	names := h.r.feeds.Services()
	if len(names) > maxFilterNames {
		return ""
	}
	return checkFilter(names)
}

// checkFilter returns a filter matching node checks and the checks of the
// named services. Names are valid registry names: nothing to escape.
func checkFilter(names []string) string {
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(`ServiceName == ""`)
	for _, name := range names {
		b.WriteString(` or ServiceName == "`)
		b.WriteString(name)
		b.WriteString(`"`)
	}
	return b.String()
}

// checksAnswered records an answer of the check loop; full asks for every
// service to be read again.
func (h *hub) checksAnswered(checks consulapi.HealthChecks, full bool) {
	fps, nodes := fingerprints(h.seed, checks)
	h.mu.Lock()
	// A node check changed: its services changed too. Those with a check
	// on it have it in their fingerprint; those without any check of their
	// own are only found by reading everything.
	if full || h.nodeFPs != nil && !maps.Equal(nodes, h.nodeFPs) {
		h.fullWanted = true
	}
	h.fps, h.nodeFPs = fps, nodes
	h.healthOK = true
	h.reconcileLocked()
	h.mu.Unlock()
	h.poke()
}

// watchCatalog follows /v1/catalog/services until the hub stops.
func (h *hub) watchCatalog() {
	q := blocking{b: backoff.Backoff{Base: 100 * time.Millisecond, Max: watchRetryMax}}
	var last uint64
	first, failed := true, false
	for q.wait(h.ctx) {
		opts, cancel := h.r.options(h.ctx, &q)
		services, meta, err := h.r.client.Catalog().Services(opts)
		cancel()
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			h.loopFailed(&h.catalogOK, fmt.Errorf("consul: watch: catalog: %w", classify(err)))
			failed = true
			if !q.failed(h.ctx) {
				return
			}
			continue
		}
		names := make(map[string]bool, len(services))
		for name := range services {
			if registry.ValidateName(name) == nil {
				names[name] = true
			}
		}
		h.catalogAnswered(names, failed || !first && meta.LastIndex != last)
		first, failed, last = false, false, meta.LastIndex
		q.ok(meta.LastIndex)
	}
}

// catalogAnswered records an answer of the catalog loop; changed says its
// index moved, which does not say which service changed: every one is read
// again (rate-limited).
func (h *hub) catalogAnswered(names map[string]bool, changed bool) {
	h.mu.Lock()
	if changed {
		h.fullWanted = true
	}
	h.catalog = names
	h.catalogOK = true
	h.reconcileLocked()
	h.mu.Unlock()
	h.poke()
}

// fingerprints sums up checks: per service, its checks (node, ID, service
// ID, status, indexes) and the node checks of the nodes they are on; per
// node, its node checks. Any change to a check moves its ModifyIndex, so
// equal fingerprints mean nothing a passing-only read depends on changed.
// Sums are order-free: no sorting.
func fingerprints(seed maphash.Seed, checks consulapi.HealthChecks) (services, nodes map[string]uint64) {
	hash := func(idx [2]uint64, strs ...string) uint64 {
		var h maphash.Hash
		h.SetSeed(seed)
		for _, s := range strs {
			h.WriteString(s)
			h.WriteByte(0)
		}
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], idx[0])
		binary.LittleEndian.PutUint64(b[8:], idx[1])
		h.Write(b[:])
		return h.Sum64()
	}
	check := func(c *consulapi.HealthCheck) uint64 {
		return hash([2]uint64{c.CreateIndex, c.ModifyIndex}, c.Node, c.CheckID, c.ServiceID, c.Status)
	}
	nodes = make(map[string]uint64)
	for _, c := range checks {
		if c != nil && c.ServiceID == "" {
			nodes[c.Node] += check(c)
		}
	}
	services = make(map[string]uint64)
	on := make(map[[2]string]bool) // service, node
	for _, c := range checks {
		if c == nil || c.ServiceID == "" || c.ServiceName == "" {
			continue
		}
		services[c.ServiceName] += check(c)
		if k := [2]string{c.ServiceName, c.Node}; !on[k] {
			on[k] = true
			services[c.ServiceName] += hash([2]uint64{nodes[c.Node]}, c.Node)
		}
	}
	return services, nodes
}
