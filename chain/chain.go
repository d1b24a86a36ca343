package chain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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
	kick   chan struct{} // capacity 1: wakes the control loop
	frozen atomic.Bool
	m      metrics
	snap   *snapshot

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

	regMu sync.Mutex // guards regs and the per-tier fields of every reg
	regs  map[string]*reg
}

var (
	_ registry.Registry             = (*Chain)(nil)
	_ registry.RegistrationReporter = (*Chain)(nil)
	_ registry.SharedReader         = (*Chain)(nil)
	_ registry.Pinger               = (*Chain)(nil)
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
			return nil, fmt.Errorf("chain: %w: tier name %q contains '+'", registry.ErrInvalid, t.Name)
		case seen[t.Name]:
			return nil, fmt.Errorf("chain: %w: two tiers named %q", registry.ErrInvalid, t.Name)
		case t.Registry == nil:
			return nil, fmt.Errorf("chain: %w: tier %q has no registry", registry.ErrInvalid, t.Name)
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
	}
	for i, t := range tiers {
		c.tiers = append(c.tiers, newTier(c, i, t))
	}
	c.m.init(c)
	c.snap = newSnapshot(c)
	c.snap.load()
	c.spawn(c.control)
	c.spawn(c.snap.flusher)
	for _, t := range c.tiers {
		c.spawn(t.probeLoop)
		if !t.readOnly {
			c.spawn(t.replayLoop)
		}
	}
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

// wakeControl asks the control loop to reconcile every service.
func (c *Chain) wakeControl() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// control reconciles every service after health changes and freezes, and
// when a recovered tier becomes stable enough for failback.
func (c *Chain) control() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		case <-timer.C:
		}
		c.reconcileAll()
		now := time.Now()
		var next time.Time
		for _, t := range c.tiers {
			if at, ok := t.stableAt(); ok && at.After(now) && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
		}
	}
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
	now := time.Now()
	for _, s := range c.serviceList() {
		s.mu.Lock()
		s.reconcileLocked(now)
		s.mu.Unlock()
	}
	c.allMu.Lock()
	d := c.disc
	c.allMu.Unlock()
	if d != nil {
		d.reconcile()
	}
}

func (c *Chain) errClosed(op string) error {
	return fmt.Errorf("chain: %s: %w", op, registry.ErrClosed)
}

// service returns the service's state, creating it (and starting its tier
// watchers) on first use.
func (c *Chain) service(name string) (*service, error) {
	c.mu.RLock()
	s, closed := c.services[name], c.closed
	c.mu.RUnlock()
	if closed {
		return nil, c.errClosed("service " + name)
	}
	if s != nil {
		return s, nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.errClosed("service " + name)
	}
	if s = c.services[name]; s != nil {
		c.mu.Unlock()
		return s, nil
	}
	s = newService(c, name)
	c.services[name] = s
	c.mu.Unlock()
	s.mu.Lock()
	s.startLocked(time.Now())
	s.mu.Unlock()
	return s, nil
}

// GetService implements registry.Registry. For a service the chain already
// watches it answers from memory without I/O. The first call for a service
// answers from the snapshot if it holds the service, else reads the first
// tier that is up (moving on only on registry.ErrUnavailable), and starts
// watching the service in every tier it may need.
//
// The returned instances are deep copies; see GetServiceShared for a cheaper
// read-only variant.
func (c *Chain) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	return cloneInstances(v.u.Instances), nil
}

// GetServiceShared implements registry.SharedReader: GetService without
// the deep copy. The returned slice
// is the caller's, but the Instances it points to are shared with the chain
// and with other callers and must not be modified (they never change once
// published: a new state holds new Instances). It costs one allocation
// whatever the number of instances.
func (c *Chain) GetServiceShared(ctx context.Context, name string) ([]*registry.Instance, error) {
	v, err := c.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]*registry.Instance, len(v.u.Instances))
	copy(out, v.u.Instances)
	return out, nil
}

func (c *Chain) lookup(ctx context.Context, name string) (*view, error) {
	c.mu.RLock()
	s, closed := c.services[name], c.closed
	c.mu.RUnlock()
	if closed {
		return nil, c.errClosed("get " + name)
	}
	if s != nil {
		if v := s.view.Load(); v != nil {
			return v, v.check(c, name)
		}
	} else {
		if err := registry.ValidateName(name); err != nil {
			return nil, err
		}
		var err error
		if s, err = c.service(name); err != nil {
			return nil, err
		}
	}
	v, err := s.await(ctx)
	if err != nil {
		return nil, err
	}
	return v, v.check(c, name)
}

// ListServices implements registry.Registry. It asks the first tier that is
// up (FirstHealthy) or every tier that is up (Merge); when none answers, or
// while frozen, it lists the services of the snapshot that have instances.
func (c *Chain) ListServices(ctx context.Context) ([]string, error) {
	if c.isClosed() {
		return nil, c.errClosed("list services")
	}
	if !c.frozen.Load() {
		set := make(map[string]struct{})
		answered := false
		var errs []error
		for _, t := range c.tiers {
			if !t.isUp() {
				continue
			}
			var names []string
			err := c.call(ctx, t, func(ctx context.Context) error {
				var err error
				names, err = t.reg.ListServices(ctx)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("chain: list services: %w", ctx.Err())
				}
				if !failover(err) {
					return nil, fmt.Errorf("chain: list services: tier %s: %w", t.name, err)
				}
				errs = append(errs, fmt.Errorf("tier %s: %w", t.name, err))
				continue
			}
			answered = true
			for _, n := range names {
				set[n] = struct{}{}
			}
			if c.opts.policy == FirstHealthy {
				break
			}
		}
		if answered {
			out := make([]string, 0, len(set))
			for n := range set {
				out = append(out, n)
			}
			slices.Sort(out)
			return out, nil
		}
		if !c.snap.any() {
			if len(errs) == 0 {
				errs = append(errs, errors.New("every tier is down"))
			}
			return nil, fmt.Errorf("chain: list services: %w: %w", registry.ErrUnavailable, errors.Join(errs...))
		}
	}
	return c.snap.names(time.Now()), nil
}

// Watch implements registry.Registry. The watcher's first Next returns the
// service's current view (from memory, or from the snapshot at start); each
// later Update is a change of the view, with Source the tier (or tiers, or
// "snapshot") it came from. Watch("") watches every service the tiers and
// the snapshot know of. A snapshot state older than WithSnapshotMaxAge is
// never delivered: Next returns a transient error wrapping
// registry.ErrUnavailable instead.
func (c *Chain) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if c.isClosed() {
		return nil, c.errClosed("watch " + name)
	}
	if name == "" {
		return c.watchAll(ctx)
	}
	if err := registry.ValidateName(name); err != nil {
		return nil, err
	}
	s, err := c.service(name)
	if err != nil {
		return nil, err
	}
	return s.watch(ctx)
}

func (c *Chain) watchAll(ctx context.Context) (registry.Watcher, error) {
	f := newFeed(ctx, func(f *registry.Feed) {
		c.allMu.Lock()
		delete(c.allFeeds, f)
		c.allMu.Unlock()
	})
	c.allMu.Lock()
	if c.allClosed {
		// Close ran after Watch's check: it would never end this feed.
		c.allMu.Unlock()
		err := c.errClosed("watch")
		f.End(err)
		return nil, err
	}
	select {
	case <-f.Done():
		c.allMu.Unlock()
		return f, nil
	default:
	}
	c.allFeeds[f] = struct{}{}
	d := c.disc
	if d == nil {
		d = newDiscovery(c)
		c.disc = d
	}
	c.allMu.Unlock()
	// Services only the snapshot knows are served from it until the tiers
	// say otherwise.
	for _, name := range c.snap.names(time.Now()) {
		if _, err := c.service(name); err != nil {
			f.End(err)
			return nil, err
		}
	}
	now := time.Now()
	for _, s := range c.serviceList() {
		s.mu.Lock()
		if v := s.view.Load(); v != nil && len(v.u.Instances) > 0 && !v.expired(now) {
			f.Publish(v.publishable())
		}
		s.mu.Unlock()
	}
	d.reconcile()
	return f, nil
}

// publishAll hands u to every watch-all feed. Called with the service's
// lock held, which orders the publishes of one service.
func (c *Chain) publishAll(u *registry.Update) {
	c.allMu.Lock()
	defer c.allMu.Unlock()
	for f := range c.allFeeds {
		f.Publish(shallow(u))
	}
}

// failAll reports err to every watch-all feed as a transient error. Called
// with the service's lock held, like publishAll.
func (c *Chain) failAll(err error) {
	c.allMu.Lock()
	defer c.allMu.Unlock()
	for f := range c.allFeeds {
		f.Fail(err)
	}
}

func (c *Chain) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

// Freeze switches the chain to serve only the snapshot (on) or back to the
// tiers (off), for registry maintenance. While frozen, every service is
// served from the last states the chain accepted (or loaded from the store)
// with Source "snapshot"; services it never saw are not found. Writes still
// go to the tiers, and the snapshot is not updated. The switch is in effect
// for every read made once Freeze returns.
func (c *Chain) Freeze(on bool) {
	if c.frozen.Swap(on) == on {
		return
	}
	c.log.Warn("chain: freeze switched", "frozen", on)
	// Reconciled here rather than by the control loop, so that reads made
	// once Freeze returns see the switch.
	c.reconcileAll()
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

// Frozen reports whether the chain is frozen.
func (c *Chain) Frozen() bool { return c.frozen.Load() }

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

// failover reports whether err moves a read to the next tier.
func failover(err error) bool {
	return errors.Is(err, registry.ErrUnavailable) || errors.Is(err, registry.ErrClosed) || errors.Is(err, context.DeadlineExceeded)
}
