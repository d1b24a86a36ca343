package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// snapshot keeps the last state the chain accepted from a tier for every
// service — in memory always, in the store when one is configured — and
// serves it when no tier can.
type snapshot struct {
	c     *Chain
	store registry.SnapshotStore
	// The loop starts save1 when a state is dirty and flushAt (Unix ns) is
	// due, one at a time.
	saving  atomic.Bool
	flushAt atomic.Int64
	retry   backoff.Backoff // owned by the save running

	mu         sync.Mutex                  // guards the fields below
	entries    map[string]*registry.Update // Source: the tier; Time: last confirmed
	lastGood   map[string]*registry.Update // the last non-empty state accepted; Source: the tier
	dirty      map[string]struct{}
	lastSave   time.Time
	lastErr    error
	commits    int64
	failures   int64
	lastCommit time.Time
}

func newSnapshot(c *Chain) *snapshot {
	return &snapshot{
		c:        c,
		store:    c.opts.store,
		retry:    backoff.Backoff{Base: c.opts.flushInterval, Max: flushRetryMax},
		entries:  make(map[string]*registry.Update),
		lastGood: make(map[string]*registry.Update),
		dirty:    make(map[string]struct{}),
	}
}

// load reads the store. Entries that make no sense are skipped.
func (s *snapshot) load() {
	if s.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.c.ctx, s.c.opts.callTimeout)
	defer cancel()
	entries, err := s.store.LoadSnapshot(ctx)
	if err != nil {
		s.c.log.Error("chain: cannot load the snapshot; starting without it", "error", err)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	skipped := 0
	for _, e := range entries {
		u := sanitize(e)
		if u == nil {
			skipped++
			continue
		}
		if old := s.entries[u.Service]; old == nil || old.Time.Before(u.Time) {
			s.entries[u.Service] = u
		}
		good := u
		if e.LastGood != nil {
			if g := sanitize(registry.SnapshotEntry{Update: e.LastGood, Saved: e.Saved}); g != nil && g.Service == u.Service {
				good = g
			}
		}
		if len(good.Instances) > 0 {
			if old := s.lastGood[u.Service]; old == nil || old.Time.Before(good.Time) {
				s.lastGood[u.Service] = good
			}
		}
	}
	if skipped > 0 {
		s.c.log.Warn("chain: skipped malformed snapshot entries", "count", skipped)
	}
	s.c.log.Debug("chain: snapshot loaded", "services", len(s.entries))
}

// sanitize returns the entry's state cleaned of anything malformed, or nil
// when it is unusable. Stores usually hand instances over sorted by ID and
// valid (adapters/file does): those are taken as they are, without a copy.
func sanitize(e registry.SnapshotEntry) *registry.Update {
	if e.Update == nil || registry.ValidateName(e.Update.Service) != nil {
		return nil
	}
	u := &registry.Update{Service: e.Update.Service, Source: e.Update.Source, Revision: e.Update.Revision, Time: e.Update.Time}
	if u.Time.IsZero() {
		u.Time = e.Saved
	}
	ins := e.Update.Instances
	clean := true
	for i, in := range ins {
		if in == nil || in.Name != u.Service || registry.ValidateID(in.ID) != nil || (i > 0 && ins[i-1].ID >= in.ID) {
			clean = false
			break
		}
	}
	if clean {
		u.Instances = ins
		if u.Instances == nil {
			u.Instances = []*registry.Instance{}
		}
		return u
	}
	seen := make(map[string]bool, len(ins))
	u.Instances = make([]*registry.Instance, 0, len(ins))
	for _, in := range ins {
		if in == nil || in.Name != u.Service || registry.ValidateID(in.ID) != nil || seen[in.ID] {
			continue
		}
		seen[in.ID] = true
		u.Instances = append(u.Instances, in)
	}
	registry.SortInstances(u.Instances)
	return u
}

// accept records a state the chain now serves from a tier. A non-empty
// state is the service's last known good state too. An empty state of a
// service the snapshot never held is not kept: absent names must not grow
// the snapshot.
func (s *snapshot) accept(name string, u *registry.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(u.Instances) == 0 && s.entries[name] == nil {
		return
	}
	s.entries[name] = u
	if len(u.Instances) > 0 {
		s.lastGood[name] = u
	}
	s.markLocked(name)
}

func (s *snapshot) markLocked(name string) {
	if s.store == nil {
		return
	}
	s.dirty[name] = struct{}{}
	s.c.kickLoop()
}

// swap replaces the entry old by the equal state u, without saving it.
func (s *snapshot) swap(name string, old, u *registry.Update) {
	s.mu.Lock()
	if s.entries[name] == old {
		s.entries[name] = u
	}
	if s.lastGood[name] == old {
		s.lastGood[name] = u
	}
	s.mu.Unlock()
}

// peek returns the service's snapshot state as served (Source "snapshot",
// Time the later of the entry's and confirmed), nil if there is none. It
// changes nothing; touch records a later confirmation.
func (s *snapshot) peek(name string, confirmed time.Time) *registry.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return nil
	}
	at := e.Time
	if confirmed.After(at) {
		at = confirmed
	}
	return &registry.Update{Service: name, Instances: e.Instances, Source: SnapshotSource, Revision: e.Revision, Time: at}
}

// touch moves the entry's confirmation time to at, if later.
func (s *snapshot) touch(name string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil || !at.After(e.Time) {
		return
	}
	cp := *e
	cp.Time = at
	if s.lastGood[name] == e {
		s.lastGood[name] = &cp
	}
	s.entries[name] = &cp
	s.markLocked(name)
}

// good returns the service's last known good state as served (Source
// "snapshot"), nil if there is none.
func (s *snapshot) good(name string) *registry.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.lastGood[name]
	if g == nil {
		return nil
	}
	return &registry.Update{Service: name, Instances: g.Instances, Source: SnapshotSource, Revision: g.Revision, Time: g.Time}
}

// goodInfo returns the last known good state's size, source tier and time.
func (s *snapshot) goodInfo(name string) (n int, source string, at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.lastGood[name]
	if g == nil {
		return 0, "", time.Time{}, false
	}
	return len(g.Instances), g.Source, g.Time, true
}

// authority returns the tiers the snapshot's history says held the
// service: the sources of its current and last known good states.
func (s *snapshot) authority(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var mask uint64
	for _, u := range []*registry.Update{s.entries[name], s.lastGood[name]} {
		if u == nil {
			continue
		}
		for _, src := range strings.Split(u.Source, "+") {
			for _, t := range s.c.tiers {
				if t.name == src {
					mask |= bit(t.idx)
				}
			}
		}
	}
	return mask
}

// fresh reports whether a snapshot state may still be served at now.
func (s *snapshot) fresh(u *registry.Update, now time.Time) bool {
	return s.c.opts.maxAge <= 0 || now.Sub(u.Time) <= s.c.opts.maxAge
}

func (s *snapshot) any() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries) > 0
}

// names returns the sorted names of the services with instances; with a
// non-zero now, only those fresh enough to serve.
func (s *snapshot) names(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.entries))
	for name, e := range s.entries {
		if len(e.Instances) > 0 && (now.IsZero() || s.fresh(e, now)) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// flushRetryMax caps the delay between retries of a failed snapshot save.
const flushRetryMax = 2 * time.Second

// dirtyAny reports whether a state waits to be saved.
func (s *snapshot) dirtyAny() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty) > 0
}

// save1 saves the changed states once (the loop starts it, at most once
// per flush interval, and again soon after a failure: a save is one local
// transaction, and a disk that was full or a file that was locked should
// be written again within seconds of it freeing up, not after a long
// backoff).
func (s *snapshot) save1() {
	c := s.c
	defer func() {
		s.saving.Store(false)
		c.kickLoop()
	}()
	err := s.flush(false)
	now := time.Now()
	if err != nil {
		if c.ctx.Err() == nil {
			s.flushAt.Store(now.Add(s.retry.Next()).UnixNano())
		}
		return
	}
	s.retry.Reset()
	s.flushAt.Store(now.Add(c.opts.flushInterval).UnixNano())
}

// flush saves the dirty states in one SaveSnapshot. At Close (final) it
// first confirms the live states and runs on its own short deadline.
func (s *snapshot) flush(final bool) error {
	if s.store == nil {
		return nil
	}
	if final {
		s.c.confirmServed(time.Now())
	}
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	names := make([]string, 0, len(s.dirty))
	ups := make([]*registry.Update, 0, len(s.dirty))
	goods := make([]*registry.Update, 0, len(s.dirty))
	for name := range s.dirty {
		names = append(names, name)
		ups = append(ups, s.entries[name])
		goods = append(goods, s.lastGood[name])
	}
	s.dirty = make(map[string]struct{})
	s.lastCommit = time.Now()
	s.mu.Unlock()

	parent := s.c.ctx
	if final {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, s.c.opts.callTimeout)
	defer cancel()
	err := s.save(ctx, ups, goods)
	if errors.Is(err, registry.ErrInvalid) && len(ups) > 1 {
		// One bad state must not block the others forever: save them one
		// by one and drop those the store refuses.
		err = nil
		for i := range ups {
			if e := s.save(ctx, ups[i:i+1], goods[i:i+1]); e != nil && !errors.Is(e, registry.ErrInvalid) {
				err = e
			}
		}
	}
	if errors.Is(err, registry.ErrInvalid) {
		s.c.log.Error("chain: the snapshot store refused a state; it is not saved", "error", err)
		err = nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		first := s.lastErr == nil
		s.failures++
		s.lastErr = err
		for _, name := range names {
			s.dirty[name] = struct{}{}
		}
		if first && !errors.Is(err, context.Canceled) {
			// Logged once per run of failures; retries follow every
			// flushRetryMax at most, and the recovery is logged.
			s.c.log.Error("chain: snapshot save failed; retrying", "services", len(ups), "error", err)
		}
		return fmt.Errorf("chain: save snapshot: %w", err)
	}
	if s.lastErr != nil {
		s.c.log.Info("chain: snapshot saves resumed", "services", len(ups))
	}
	s.commits++
	s.lastSave = time.Now()
	s.lastErr = nil
	return nil
}

// save writes the states, with their last known good states when the
// store keeps them (registry.LastGoodSaver).
func (s *snapshot) save(ctx context.Context, ups, goods []*registry.Update) error {
	lg, ok := s.store.(registry.LastGoodSaver)
	if !ok {
		return s.store.SaveSnapshot(ctx, ups)
	}
	entries := make([]registry.SnapshotEntry, len(ups))
	for i, u := range ups {
		entries[i] = registry.SnapshotEntry{Update: u}
		if g := goods[i]; g != nil && g != u {
			entries[i].LastGood = g
		}
	}
	return lg.SaveSnapshotEntries(ctx, entries)
}

// snapCounters are the snapshot's counters.
type snapCounters struct {
	entries           int
	lastSave          time.Time
	lastErr           error
	commits, failures int64
}

// status returns the snapshot's counters.
func (s *snapshot) status() snapCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return snapCounters{len(s.entries), s.lastSave, s.lastErr, s.commits, s.failures}
}
