package mirror

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/internal/dropguard"
	"github.com/regchain/regchain/registry"
)

// Mirror copies records from Config.Source to Config.Target; see the
// package doc for its rules. Run it once; Stats, ReleaseHold, Close and
// Withdraw may be called from any goroutine.
type Mirror struct {
	cfg     Config
	guard   dropguard.Settings
	wake    chan struct{} // capacity 1: a source state changed
	stop    chan struct{} // closed by Close and Withdraw
	runDone chan struct{} // closed when Run returns

	mu              sync.Mutex                      // guards the fields below
	src             map[string][]*registry.Instance // accepted source state per service, natives only
	holds           map[string]*hold                // held drops per service
	dirty           map[string]bool                 // services to reconcile
	failingSince    time.Time                       // first source failure of the current outage; zero when up
	lastErr         error                           // last source error
	stats           Stats
	closed          bool            // Close or Withdraw called
	running         bool            // Run started
	withdraw        context.Context // set by Withdraw: Run deregisters within it
	lastWithdrawErr error

	// Owned by Run's goroutine.
	written map[string]map[string]*registry.Instance // service -> ID -> what the mirror registered
	stale   bool                                     // source down longer than StaleAfter
}

// Stats are a mirror's counters and held drops.
type Stats struct {
	// Records is how many records the mirror holds in the target.
	Records int
	// Registered and Deregistered count successful target writes.
	Registered, Deregistered int64
	// WriteFailures counts failed target calls.
	WriteFailures int64
	// Resyncs counts full reconciliations.
	Resyncs int64
	// SourceDown is true while the source fails; Stale once its records
	// have been withdrawn (StaleAfter passed).
	SourceDown, Stale bool
	// Holds lists the drops at the source held back now, by service name.
	Holds []Hold
	// Guard counts what the drop guard did since New.
	Guard GuardStats
}

// New returns a mirror; Run starts it.
func New(cfg Config) (*Mirror, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Mirror{
		cfg:     cfg,
		guard:   dropguard.Settings(cfg.Guard),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		runDone: make(chan struct{}),
		src:     make(map[string][]*registry.Instance),
		holds:   make(map[string]*hold),
		dirty:   make(map[string]bool),
		written: make(map[string]map[string]*registry.Instance),
	}, nil
}

// Stats returns the mirror's counters and held drops.
func (m *Mirror) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	st.Holds = make([]Hold, 0, len(m.holds))
	for _, s := range slices.Sorted(maps.Keys(m.holds)) {
		h := m.holds[s]
		st.Holds = append(st.Holds, Hold{Service: s, Mirrored: len(m.src[s]), Source: len(h.cand), Since: h.since, Reads: h.reads})
	}
	return st
}

// Close stops the mirror and leaves its records in the target, to expire
// with their TTL once the target registry's keepalives stop (close it, or
// let the process end): a restart, a hand-over. It waits for Run to return
// and is idempotent; after it, Run returns at once.
func (m *Mirror) Close() error {
	m.end(context.Background(), false)
	return nil
}

// Withdraw stops the mirror and deregisters every record it wrote, within
// ctx (records it cannot remove in time expire with their TTL). It waits for
// Run to return and reports the first deregistration error. Once Close or
// Withdraw has run, it does nothing.
func (m *Mirror) Withdraw(ctx context.Context) error {
	return m.end(ctx, true)
}

// end stops Run, which withdraws within ctx when asked to.
func (m *Mirror) end(ctx context.Context, withdraw bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	if withdraw {
		m.withdraw = ctx
	}
	running := m.running
	m.mu.Unlock()
	close(m.stop)
	if running {
		<-m.runDone
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastWithdrawErr
}

// Run mirrors until Close or Withdraw, or until ctx ends (then as after
// Close: the records are left to expire). It returns nil after Close or
// Withdraw, ctx's error when ctx ended, and an error at once when the
// mirror was already stopped or is running.
func (m *Mirror) Run(ctx context.Context) error {
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return errors.New("mirror: Run after Close or Withdraw")
	case m.running:
		m.mu.Unlock()
		return errors.New("mirror: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	defer close(m.runDone)

	ctx, cancel := context.WithCancel(ctx)
	names := m.cfg.Services
	if len(names) == 0 {
		names = []string{""}
	}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() { defer wg.Done(); m.follow(ctx, name) }()
	}
	defer wg.Wait()
	defer cancel()

	// The first full read, so that records of an earlier run that the
	// source no longer holds are found and removed.
	m.fullRead(ctx)
	m.markTargetServices(ctx)
	resync := time.NewTicker(m.cfg.ResyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	reread := time.NewTimer(time.Hour)
	defer reread.Stop()
	bo := backoff.Backoff{Base: 50 * time.Millisecond, Max: m.cfg.MaxBackoff}
	for {
		m.armReread(reread)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.stop:
			m.mu.Lock()
			wctx := m.withdraw
			m.mu.Unlock()
			if wctx != nil {
				m.withdrawAll(wctx)
			}
			return nil
		case <-m.wake:
		case <-resync.C:
			m.fullRead(ctx)
		case <-retry.C:
			if m.sourceDown() {
				m.fullRead(ctx) // a probe: success ends the outage
			}
		case <-reread.C:
			m.rereadHeld(ctx)
		}
		m.checkStale()
		if ok := m.reconcile(ctx); ok && !m.sourceDown() {
			bo.Reset()
			retry.Stop()
			continue
		}
		retry.Reset(bo.Next())
	}
}

// markTargetServices marks for reconciliation, when every service is
// mirrored, the target's services too: an earlier run may have left
// records of this origin in services the source no longer has.
func (m *Mirror) markTargetServices(ctx context.Context) {
	if len(m.cfg.Services) > 0 {
		return
	}
	var names []string
	err := m.call(ctx, func(ctx context.Context) error {
		var err error
		names, err = m.cfg.Target.ListServices(ctx)
		return err
	})
	if err != nil {
		return // the periodic resyncs and the TTL take care of leftovers
	}
	m.mu.Lock()
	for _, s := range names {
		m.dirty[s] = true
	}
	m.mu.Unlock()
	m.signal()
}

// follow feeds the source states of one watch into m.
func (m *Mirror) follow(ctx context.Context, name string) {
	w, err := m.cfg.Source.Watch(ctx, name)
	if err != nil {
		m.sourceFailed(err)
		// Watch only fails on a closed registry or a done ctx: nothing to
		// follow; full reads keep the mirror going while ctx lives.
		return
	}
	defer w.Stop()
	for {
		u, err := w.Next()
		if err != nil {
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
			m.sourceFailed(err)
			continue
		}
		m.setSource(u.Service, u.Instances)
		m.sourceUp()
	}
}

func natives(ins []*registry.Instance) []*registry.Instance {
	out := make([]*registry.Instance, 0, len(ins))
	for _, in := range ins {
		if !Mirrored(in) {
			out = append(out, in)
		}
	}
	return out
}

func (m *Mirror) setSource(service string, ins []*registry.Instance) {
	m.mu.Lock()
	m.offerLocked(service, natives(ins), false, time.Now())
	m.mu.Unlock()
	m.signal()
}

func (m *Mirror) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Mirror) sourceFailed(err error) {
	m.mu.Lock()
	if m.failingSince.IsZero() {
		m.failingSince = time.Now()
		m.cfg.Logger.Warn("mirror: source failing", "origin", m.cfg.Origin, "err", err)
	}
	m.lastErr = err
	m.stats.SourceDown = true
	m.mu.Unlock()
	m.signal()
}

func (m *Mirror) sourceUp() {
	m.mu.Lock()
	was := !m.failingSince.IsZero()
	m.failingSince = time.Time{}
	m.lastErr = nil
	m.stats.SourceDown = false
	m.mu.Unlock()
	if was {
		m.cfg.Logger.Info("mirror: source back", "origin", m.cfg.Origin)
	}
}

func (m *Mirror) sourceDown() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.failingSince.IsZero()
}

// checkStale withdraws the records of a source down for StaleAfter, and
// puts them back once it is up.
func (m *Mirror) checkStale() {
	m.mu.Lock()
	stale := !m.failingSince.IsZero() && time.Since(m.failingSince) >= m.cfg.StaleAfter
	if stale != m.stale {
		for s := range m.src {
			m.dirty[s] = true
		}
		for s := range m.written {
			m.dirty[s] = true
		}
		m.stats.Stale = stale
		if stale {
			// The records go: nothing is left for the guard to protect, and
			// the source's first states once it is back are taken as they are.
			clear(m.src)
			clear(m.holds)
		}
	}
	m.mu.Unlock()
	if stale != m.stale {
		m.cfg.Logger.Warn("mirror: source stale", "origin", m.cfg.Origin, "stale", stale)
	}
	m.stale = stale
}

// fullRead reads every mirrored service from the source (a failure marks
// the source down) and marks every service for reconciliation.
func (m *Mirror) fullRead(ctx context.Context) {
	state, err := m.readSource(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.sourceFailed(err)
		}
		return
	}
	m.mu.Lock()
	for s := range m.src {
		if _, ok := state[s]; !ok {
			state[s] = nil // gone from the source
		}
	}
	for s := range m.written {
		if _, ok := state[s]; !ok {
			state[s] = nil
		}
	}
	now := time.Now()
	for s, ins := range state {
		m.offerLocked(s, natives(ins), false, now)
	}
	m.stats.Resyncs++
	m.mu.Unlock()
	m.sourceUp()
	m.signal()
}

func (m *Mirror) readSource(ctx context.Context) (map[string][]*registry.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	names := m.cfg.Services
	if len(names) == 0 {
		var err error
		if names, err = m.cfg.Source.ListServices(ctx); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
	}
	state := make(map[string][]*registry.Instance, len(names))
	for _, s := range names {
		ins, err := m.cfg.Source.GetService(ctx, s)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return nil, fmt.Errorf("get %q: %w", s, err)
		}
		state[s] = ins
	}
	return state, nil
}

// reconcile brings every dirty service of the target to its desired state;
// it reports whether every write succeeded (failed services stay dirty).
func (m *Mirror) reconcile(ctx context.Context) bool {
	m.mu.Lock()
	work := make(map[string][]*registry.Instance, len(m.dirty))
	for s := range m.dirty {
		if m.stale {
			work[s] = nil
		} else {
			work[s] = m.src[s]
		}
	}
	clear(m.dirty)
	m.mu.Unlock()
	ok := true
	for _, s := range slices.Sorted(maps.Keys(work)) {
		if ctx.Err() != nil {
			return false
		}
		if err := m.reconcileService(ctx, s, work[s]); err != nil {
			ok = false
			m.mu.Lock()
			m.dirty[s] = true
			m.stats.WriteFailures++
			m.mu.Unlock()
			m.cfg.Logger.Debug("mirror: reconcile failed", "service", s, "err", err)
		}
	}
	m.mu.Lock()
	n := 0
	for _, w := range m.written {
		n += len(w)
	}
	m.stats.Records = n
	m.mu.Unlock()
	return ok
}

func (m *Mirror) stamp(in *registry.Instance) *registry.Instance {
	out := in.Clone()
	if out.Metadata == nil {
		out.Metadata = make(map[string]string, 1)
	}
	out.Metadata[KeyOrigin] = m.cfg.Origin
	return out
}

// register writes a record into the target, with Config.TTL when set.
func (m *Mirror) register(ctx context.Context, in *registry.Instance) error {
	if m.cfg.TTL > 0 {
		return m.cfg.Target.(registry.TTLRegistrar).RegisterTTL(ctx, in, m.cfg.TTL)
	}
	return m.cfg.Target.Register(ctx, in)
}

func (m *Mirror) call(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	return fn(ctx)
}

func (m *Mirror) reconcileService(ctx context.Context, service string, src []*registry.Instance) error {
	var actual []*registry.Instance
	err := m.call(ctx, func(ctx context.Context) error {
		var err error
		actual, err = m.cfg.Target.GetService(ctx, service)
		if errors.Is(err, registry.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("read target: %w", err)
	}
	byID := make(map[string]*registry.Instance, len(actual))
	for _, a := range actual {
		byID[a.ID] = a
	}
	written := m.written[service]
	if written == nil {
		written = make(map[string]*registry.Instance)
		m.written[service] = written
	}
	var errs []error
	want := make(map[string]bool, len(src))
	for _, in := range src {
		d := m.stamp(in)
		want[d.ID] = true
		a := byID[d.ID]
		if a != nil && Origin(a) != m.cfg.Origin {
			// The target holds this instance natively (or from another
			// origin): leave it, and forget ours if it took our key over.
			delete(written, d.ID)
			continue
		}
		if a != nil && written[d.ID] != nil && written[d.ID].Equal(d) {
			continue
		}
		if err := m.call(ctx, func(ctx context.Context) error { return m.register(ctx, d) }); err != nil {
			errs = append(errs, fmt.Errorf("register %s: %w", d.Key(), err))
			continue
		}
		written[d.ID] = d
		m.count(func(s *Stats) { s.Registered++ })
	}
	deregister := func(in *registry.Instance) bool {
		if err := m.call(ctx, func(ctx context.Context) error { return m.cfg.Target.Deregister(ctx, in) }); err != nil {
			errs = append(errs, fmt.Errorf("deregister %s: %w", in.Key(), err))
			return false
		}
		m.count(func(s *Stats) { s.Deregistered++ })
		return true
	}
	for id, w := range written {
		if !want[id] && deregister(w) {
			delete(written, id)
		}
	}
	for _, a := range actual {
		if Origin(a) == m.cfg.Origin && !want[a.ID] && written[a.ID] == nil {
			deregister(a) // left by an earlier run
		}
	}
	if len(written) == 0 {
		delete(m.written, service)
	}
	return errors.Join(errs...)
}

func (m *Mirror) count(fn func(*Stats)) {
	m.mu.Lock()
	fn(&m.stats)
	m.mu.Unlock()
}

// withdrawAll deregisters every record the mirror wrote within ctx:
// records it cannot remove in time expire with their TTL. The first error
// is kept for Withdraw.
func (m *Mirror) withdrawAll(ctx context.Context) {
	var first error
	for _, s := range slices.Sorted(maps.Keys(m.written)) {
		for _, w := range m.written[s] {
			err := m.call(ctx, func(ctx context.Context) error { return m.cfg.Target.Deregister(ctx, w) })
			if err != nil {
				m.cfg.Logger.Warn("mirror: deregister on withdraw", "instance", w.Key(), "err", err)
				if first == nil {
					first = fmt.Errorf("mirror: withdraw %s: %w", w.Key(), err)
				}
				continue
			}
			m.count(func(s *Stats) { s.Deregistered++ })
		}
	}
	m.written = make(map[string]map[string]*registry.Instance)
	m.mu.Lock()
	m.stats.Records = 0
	m.lastWithdrawErr = first
	m.mu.Unlock()
}
