package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regchain/regchain/registry"
)

// SnapshotSource is the Source of every Update served from the snapshot.
const SnapshotSource = "snapshot"

// maxTiers bounds the number of tiers: a view records its source tiers in a
// 64-bit mask.
const maxTiers = 63

// Tier is one registry of the chain.
type Tier struct {
	// Name identifies the tier in Updates (their Source), Status, logs and
	// metrics. It must be unique within the chain, non-empty, not
	// "snapshot", and may not contain '+'.
	Name string
	// Registry is the tier's backend. The chain closes it only with
	// WithOwnTiers.
	Registry registry.Registry
	// ReadOnly tiers are read but never written: the chain registers its
	// instances only in the other tiers.
	ReadOnly bool
}

// Chain is a registry.Registry over an ordered list of tiers, with an
// in-memory view per service fed by watches, per-tier health with a circuit
// breaker, failover and failback with hysteresis, a desired set of
// registrations replayed into tiers that come back, an optional snapshot
// store as the last resort and an empty-push guard. See the package
// documentation.
//
// A Chain is safe for concurrent use.
type Chain struct {
	opts   options
	log    *slog.Logger
	tiers  []*tier
	ctx    context.Context // the chain's own: cancelled by Close
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: wakes the loop (loop.go)
	ls     loopState     // the loop's own
	// controlDue asks the loop to reconcile every service (wakeControl).
	controlDue atomic.Bool
	frozen     atomic.Bool
	m          metrics
	snap       *snapshot
	pump       *pump    // reads the tiers' Notifier watchers, on the loop (tierwatch.go)
	ext        extState // degradation level, switch file (level.go, switchfile.go)

	goMu     sync.Mutex // guards goClosed and wg.Add
	goClosed bool
	wg       sync.WaitGroup

	mu       sync.RWMutex // guards the fields below
	services map[string]*service
	closed   bool

	allMu     sync.Mutex // guards the fields below
	allFeeds  map[*registry.Feed]struct{}
	disc      *discovery // watch-all name discovery, started by the first Watch("")
	allClosed bool       // set by Close: no feed or discovery may start

	regMu sync.Mutex // guards regs, gone and the per-tier fields of every reg
	regs  map[string]*reg
	gone  map[string]time.Time // key: when the chain last deregistered it
}

var (
	_ registry.Registry             = (*Chain)(nil)
	_ registry.RegistrationReporter = (*Chain)(nil)
	_ registry.SharedReader         = (*Chain)(nil)
	_ registry.Pinger               = (*Chain)(nil)
	_ registry.Validator            = (*Chain)(nil)
)

// New returns a chain over tiers, in order of preference. It loads the
// snapshot (if one is configured with WithSnapshot) before returning, so
// that the chain can answer from it at once, and starts probing the tiers.
// An unreadable snapshot is logged and ignored; it is overwritten by the
// next states the chain accepts.
func New(tiers []Tier, opts ...Option) (*Chain, error) {
	if len(tiers) == 0 {
		return nil, fmt.Errorf("chain: %w: no tiers", registry.ErrInvalid)
	}
	if len(tiers) > maxTiers {
		return nil, fmt.Errorf("chain: %w: %d tiers, more than %d", registry.ErrInvalid, len(tiers), maxTiers)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	seen := make(map[string]bool)
	for i, t := range tiers {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("chain: %w: tier %d has no name", registry.ErrInvalid, i)
		case t.Name == SnapshotSource:
			return nil, fmt.Errorf("chain: %w: tier %d: the name %q is reserved", registry.ErrInvalid, i, SnapshotSource)
		case strings.Contains(t.Name, "+"):
			return nil, fmt.Errorf("chain: %w: tier name %s contains '+'", registry.ErrInvalid, registry.Quote(t.Name))
		case seen[t.Name]:
			return nil, fmt.Errorf("chain: %w: two tiers named %s", registry.ErrInvalid, registry.Quote(t.Name))
		case t.Registry == nil:
			return nil, fmt.Errorf("chain: %w: tier %s has no registry", registry.ErrInvalid, registry.Quote(t.Name))
		}
		seen[t.Name] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Chain{
		opts:     o,
		log:      o.logger.With("chain", o.name),
		ctx:      ctx,
		cancel:   cancel,
		kick:     make(chan struct{}, 1),
		services: make(map[string]*service),
		allFeeds: make(map[*registry.Feed]struct{}),
		regs:     make(map[string]*reg),
		gone:     make(map[string]time.Time),
	}
	for i, t := range tiers {
		c.tiers = append(c.tiers, newTier(c, i, t))
	}
	c.snap = newSnapshot(c)
	c.snap.load()
	c.pump = newPump(c)
	if c.opts.ext.switchFile != "" {
		// A switch file present at start freezes the chain before New
		// returns.
		c.pollSwitchFile()
	}
	c.spawn(c.loop)
	c.kickLoop()
	return c, nil
}

// spawn runs f in a goroutine that Close waits for; it does nothing once
// the chain is closed.
func (c *Chain) spawn(f func()) bool {
	c.goMu.Lock()
	defer c.goMu.Unlock()
	if c.goClosed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// wakeControl asks the loop to reconcile every service.
func (c *Chain) wakeControl() {
	c.controlDue.Store(true)
	c.kickLoop()
}

func (c *Chain) serviceList() []*service {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*service, 0, len(c.services))
	for _, s := range c.services {
		out = append(out, s)
	}
	return out
}

func (c *Chain) reconcileAll() {
	// Discovery first: the services then follow its current watchers.
	c.allMu.Lock()
	d := c.disc
	c.allMu.Unlock()
	if d != nil {
		d.reconcile()
	}
	now := time.Now()
	for _, s := range c.serviceList() {
		s.mu.Lock()
		s.recomputeLocked(now, false, false)
		s.mu.Unlock()
	}
}

func (c *Chain) errClosed(op string) error {
	return fmt.Errorf("chain: %s: %w", op, registry.ErrClosed)
}

// service returns the service's state, creating it (and starting its tier
// watchers) on first use. Over the cap (WithMaxServices) it first evicts
// the least recently read service nobody watches.
func (c *Chain) service(name string) (*service, error) { return c.serviceFrom(name, nil) }

// serviceFrom is service; a service it creates is first covered by the
// discovery watcher w (nil: none), whose state for it comes next, so that
// it does not start a watch of its own in w's tier.
func (c *Chain) serviceFrom(name string, w *tierWatcher) (*service, error) {
	c.mu.RLock()
	s, closed := c.services[name], c.closed
	c.mu.RUnlock()
	if closed {
		return nil, c.errClosed("service " + name)
	}
	if s != nil {
		return s, nil
	}
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.errClosed("service " + name)
	}
	if s = c.services[name]; s != nil {
		c.mu.Unlock()
		return s, nil
	}
	var victim *service
	if len(c.services) >= c.opts.maxServices {
		if victim = c.victimLocked(); victim == nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("chain: get %s: %w: %d services are watched, the most WithMaxServices allows", registry.Quote(name), registry.ErrUnavailable, c.opts.maxServices)
		}
		delete(c.services, victim.name)
	}
	s = newService(c, name, now)
	c.services[name] = s
	c.mu.Unlock()
	if victim != nil {
		c.evict(victim, "over the cap")
	}
	s.mu.Lock()
	if w != nil {
		s.cover[w.t.idx] = w
	}
	s.startLocked(now)
	s.mu.Unlock()
	return s, nil
}

func (c *Chain) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

// Ping implements registry.Pinger, so that a chain can be a tier of
// another chain: it returns nil while the chain is Ready (a tier is up, or
// the chain is frozen), an error wrapping registry.ErrUnavailable while
// the chain can answer only from the snapshot, and registry.ErrClosed after
// Close. It does no I/O: it reports the health the probes found.
func (c *Chain) Ping(ctx context.Context) error {
	if c.isClosed() {
		return c.errClosed("ping")
	}
	if c.frozen.Load() {
		return nil
	}
	for _, t := range c.tiers {
		if t.isUp() {
			return nil
		}
	}
	return fmt.Errorf("chain %s: ping: %w: every tier is down", c.opts.name, registry.ErrUnavailable)
}

// Close implements registry.Registry: it ends every watcher with
// registry.ErrClosed, stops every goroutine the chain started, saves the
// pending snapshot changes, and closes the tiers and the snapshot store only
// when the chain owns them (WithOwnTiers, WithOwnSnapshot). Registrations are left to the tiers (their leases
// and sessions run out); pending ones are dropped.
func (c *Chain) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	services := make([]*service, 0, len(c.services))
	for _, s := range c.services {
		services = append(services, s)
	}
	c.mu.Unlock()

	c.goMu.Lock()
	c.goClosed = true
	c.goMu.Unlock()
	c.cancel()

	errClosed := c.errClosed("watch")
	for _, s := range services {
		s.close(errClosed)
	}
	c.allMu.Lock()
	c.allClosed = true
	feeds := c.allFeeds
	c.allFeeds = make(map[*registry.Feed]struct{})
	d := c.disc
	c.allMu.Unlock()
	for f := range feeds {
		f.End(errClosed)
	}
	if d != nil {
		d.stop()
	}
	c.wg.Wait()

	var errs []error
	if err := c.snap.flush(true); err != nil {
		errs = append(errs, err)
	}
	if c.opts.ownSnapshot {
		if cl, ok := c.opts.store.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				errs = append(errs, fmt.Errorf("chain: close snapshot store: %w", err))
			}
		}
	}
	if c.opts.ownTiers {
		for _, t := range c.tiers {
			if err := t.reg.Close(); err != nil {
				errs = append(errs, fmt.Errorf("chain: close tier %s: %w", t.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

var errCallTimeout = errors.New("chain: tier call timed out")

// call runs fn against tier t with the chain's call timeout and reports the
// outcome to the tier's health. It returns the error of fn (or the ctx's).
func (c *Chain) call(ctx context.Context, t *tier, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeoutCause(ctx, c.opts.callTimeout, errCallTimeout)
	defer cancel()
	err := fn(cctx)
	if err != nil && ctx.Err() != nil {
		return err // the caller gave up: not the tier's fault
	}
	if err != nil && context.Cause(cctx) == errCallTimeout {
		err = fmt.Errorf("%w: %w: %w", registry.ErrUnavailable, errCallTimeout, err)
	}
	t.report(err, false)
	return err
}

// failover reports whether err moves a read to the next tier: only
// registry.ErrUnavailable does, as the registry contract says (call wraps
// the chain's own timeouts in it).
func failover(err error) bool {
	return errors.Is(err, registry.ErrUnavailable)
}

func (c *Chain) onTierDown(t *tier, err error) {
	c.log.Warn("chain: tier down", "tier", t.name, "error", err)
	c.wakeControl()
}

func (c *Chain) onTierUp(t *tier) {
	c.log.Info("chain: tier up", "tier", t.name)
	if !t.readOnly {
		c.replayAll(t)
	}
	c.wakeControl()
}

// confirmServed moves the confirmation time of every service served from a tier
// that is up to now, so that the stored age stays truthful after a crash.
func (c *Chain) confirmServed(now time.Time) {
	s := c.snap
	if s.store == nil || c.frozen.Load() {
		return
	}
	for _, svc := range c.serviceList() {
		v := svc.cur.Load()
		if v == nil || v.mask == 0 {
			continue
		}
		up := true
		for m := v.mask; m != 0; m &= m - 1 {
			up = up && c.tiers[lowest(m, len(c.tiers))].isUp()
		}
		if up {
			s.touch(svc.name, now)
		}
	}
}

// kickLoop asks the loop for a turn.
func (c *Chain) kickLoop() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
