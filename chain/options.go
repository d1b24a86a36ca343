package chain

import (
	"log/slog"
	"time"

	"github.com/regchain/regchain/internal/dropguard"
	"github.com/regchain/regchain/registry"
)

// ReadPolicy decides which tiers a service's view is built from.
type ReadPolicy int

const (
	// FirstHealthy serves each service from the first tier, in chain order,
	// that is up and has the service's state. It is the default.
	FirstHealthy ReadPolicy = iota
	// Merge serves the union of every tier that is up, the first tier in
	// chain order winning when two hold the same instance ID. It is meant for
	// migrating from one registry to another. A merged Update's Source is the
	// names of the tiers it was built from joined by "+", e.g. "old+new".
	Merge
)

// String returns "first-healthy" or "merge".
func (p ReadPolicy) String() string {
	switch p {
	case FirstHealthy:
		return "first-healthy"
	case Merge:
		return "merge"
	}
	return "ReadPolicy(?)"
}

// Guard configures the empty-push protection (rule 5 of the package
// documentation): a state from any tier that keeps fewer than
// 1-MaxDropShare of the served instances (a drop to zero included) is held
// — the served state stays — until it has been re-read Confirmations times
// over Window, each time still a drop. A re-read that is not a drop ends
// the hold. Chain.ReleaseHold lets a held drop through at once.
//
// The zero Guard is the default guard.
type Guard struct {
	// Disabled turns the protection off: every state goes through at once.
	Disabled bool
	// MaxDropShare is the share of instances (0 to 1) one state may remove
	// before it counts as a drop; a drop to zero always counts. If zero, 0.5.
	MaxDropShare float64
	// Window is the least time a held drop is held: its confirming re-reads
	// are spread over it, one every Window/Confirmations. If zero, 60s:
	// longer than the re-register backoff of Kratos' contrib registries
	// (up to 32s) and two Go-Micro register intervals (30s each), so that a
	// registry restarted empty is refilled by its providers before a drop
	// could go through.
	Window time.Duration
	// Confirmations is how many re-reads, each still a drop, confirm a
	// held drop. If zero, 4.
	Confirmations int
}

// Option configures a Chain.
type Option func(*options)

type options struct {
	name          string
	store         registry.SnapshotStore
	maxAge        time.Duration
	flushInterval time.Duration
	refresh       time.Duration
	policy        ReadPolicy
	probeInterval time.Duration
	probeTimeout  time.Duration
	callTimeout   time.Duration
	threshold     int
	failbackAfter time.Duration
	strict        bool
	guard         Guard
	logger        *slog.Logger
	ownTiers      bool
	ownSnapshot   bool
	hedgeDelay    time.Duration
	idle          time.Duration
	negTTL        time.Duration
	maxServices   int
	ext           extOptions // switch file, static tiers (switchfile.go)
}

func defaultOptions() options {
	return options{
		name:          "chain",
		flushInterval: 100 * time.Millisecond,
		refresh:       time.Minute,
		probeInterval: time.Second,
		probeTimeout:  time.Second,
		callTimeout:   2 * time.Second,
		threshold:     2,
		failbackAfter: 10 * time.Second,
		hedgeDelay:    100 * time.Millisecond,
		idle:          10 * time.Minute,
		negTTL:        5 * time.Second,
		maxServices:   10000,
	}
}

// WithName names the chain in logs (attribute "chain") and metrics (constant
// label "chain"), to tell several chains of one process apart. If unset,
// "chain".
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithSnapshot makes store the chain's last resort: every state the chain
// accepts from a tier is saved to it (debounced, see WithFlushInterval), and
// at start the chain answers GetService and Watch from it at once, with
// Source "snapshot", while the tiers are tried. Without a store the chain
// still falls back to the last states it saw in this process.
//
// The store stays the caller's: Close saves the pending changes to it but
// does not close it, so the caller closes it after the chain (until then the
// file stays locked: a second OpenStore of it fails with ErrLocked). With
// WithOwnSnapshot(true) the chain closes it at the end of Close.
func WithSnapshot(store registry.SnapshotStore) Option {
	return func(o *options) { o.store = store }
}

// WithSnapshotMaxAge sets how old a snapshot state may be (measured from
// when its source last confirmed it) and still be served; older states are
// not served: GetService returns an error wrapping registry.ErrUnavailable
// instead, and watchers get that error once, as a transient error, rather
// than the state (also when a served state grows too old). If zero, any age
// is served: stale peers are usually better than none.
func WithSnapshotMaxAge(d time.Duration) Option { return func(o *options) { o.maxAge = d } }

// WithFlushInterval sets the minimum time between two snapshot commits;
// changes in between are batched into one SaveSnapshot. If zero, 100ms
// (at most 10 commits per second).
func WithFlushInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.flushInterval = d
		}
	}
}

// WithSnapshotRefresh sets how often the snapshot's confirmation times are
// refreshed for services whose source tier is up, so that after a crash the
// snapshot's age says how long ago the states were last seen live rather
// than when they last changed. If zero, 1m.
func WithSnapshotRefresh(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.refresh = d
		}
	}
}

// WithReadPolicy sets the read policy. If unset, FirstHealthy.
func WithReadPolicy(p ReadPolicy) Option { return func(o *options) { o.policy = p } }

// WithProbeInterval sets how often each tier is probed (registry.Pinger's
// Ping, or for tiers without it a GetService of a service that does not
// exist). If zero, 1s.
func WithProbeInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.probeInterval = d
		}
	}
}

// WithProbeTimeout bounds each probe. If zero, 1s.
func WithProbeTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.probeTimeout = d
		}
	}
}

// WithCallTimeout bounds each call the chain makes to a tier on its own
// account: the first read of a service, writes, replays, re-reads. A call
// that times out counts as a tier failure. It is also how long a service's
// view waits for a tier watch's first state before passing the tier over.
// If zero, 2s.
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.callTimeout = d
		}
	}
}

// WithFailureThreshold sets how many consecutive failures (probes, calls or
// watch errors that wrap registry.ErrUnavailable) open a tier's circuit:
// the tier is then skipped until a probe succeeds. If zero, 2.
func WithFailureThreshold(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.threshold = n
		}
	}
}

// WithFailbackAfter sets the hysteresis of failback: a tier that recovers
// becomes a service's source again only after it has stayed up this long,
// so a flapping tier is not switched to and away from on every flap.
// Leaving the snapshot for a tier that is up needs no wait. If zero, 10s.
func WithFailbackAfter(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.failbackAfter = d
		}
	}
}

// WithStrictRegister makes Register return an error wrapping
// registry.ErrUnavailable when no tier accepted the registration within its
// ctx; the registration is then dropped rather than left pending, and the
// chain goes back to what it kept for the instance before (an earlier
// registration of the same Name and ID stays registered). By default
// Register keeps the registration, retries it in the background and
// returns nil.
func WithStrictRegister(strict bool) Option { return func(o *options) { o.strict = strict } }

// WithGuard configures the empty-push guard (see Guard).
func WithGuard(g Guard) Option { return func(o *options) { o.guard = g } }

// WithHedgeDelay sets how long the first read of a service waits for a
// tier before it also asks the next tier and serves the snapshot's state,
// if the snapshot holds one. If zero, 100ms.
func WithHedgeDelay(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.hedgeDelay = d
		}
	}
}

// WithIdleTimeout sets how long a service nobody reads or watches stays
// watched and in memory (it stays in the snapshot). If zero, 10m.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.idle = d
		}
	}
}

// WithNegativeTTL sets how long a service that exists nowhere (its view is
// empty) and is not watched is remembered as absent. If zero, 5s.
func WithNegativeTTL(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.negTTL = d
		}
	}
}

// WithMaxServices caps the services kept in memory and watched. A new
// service evicts the least recently read one nobody watches; when all are
// watched, its read fails with an error wrapping registry.ErrUnavailable.
// If zero, 10,000.
func WithMaxServices(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxServices = n
		}
	}
}

// WithLogger sets the structured logger. If nil or unset, slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithOwnTiers makes Close close the tiers' registries too. By default the
// chain closes nothing it was given: the tiers are the caller's.
func WithOwnTiers(own bool) Option { return func(o *options) { o.ownTiers = own } }

// WithOwnSnapshot makes Close close the snapshot store (if it is an
// io.Closer) after its final save. By default the store is the caller's, as
// the tiers are.
func WithOwnSnapshot(own bool) Option { return func(o *options) { o.ownSnapshot = own } }

// The guard's defaults and rules are dropguard's, which the mirror shares.
func (g Guard) confirmations() int { return dropguard.Settings(g).Reads() }

// interval is the time between two confirming re-reads.
func (g Guard) interval() time.Duration { return dropguard.Settings(g).Interval() }

func (g Guard) share() float64 { return dropguard.Settings(g).Share() }

func (g Guard) window() time.Duration { return dropguard.Settings(g).HoldWindow() }

// extOptions are the options of the operator features: the switch file,
// the static tiers and the degradation level.
type extOptions struct {
	switchFile  string
	switchEvery time.Duration
	static      []string
}

// WithSwitchFile makes the chain watch path, an operator's switch: while
// the file exists the chain is frozen (Freeze(true): every service is
// served its last known good state), and when it is removed the chain is
// unfrozen. Its content is ignored. The chain looks for the file when it
// starts and then every WithSwitchFileInterval. Only the file's appearing
// and disappearing switch: a Freeze call in between (from the admin
// handler, say) stands until the file next appears or disappears. An error
// other than "does not exist" (a permission problem) is logged and changes
// nothing. An operator can flip a whole fleet with a config-management
// push that creates or removes the file.
func WithSwitchFile(path string) Option { return func(o *options) { o.ext.switchFile = path } }

// WithSwitchFileInterval sets how often the switch file is looked for. If
// zero, 1s.
func WithSwitchFileInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.ext.switchEvery = d
		}
	}
}

// WithStaticTiers names the chain's static tiers (hand-written instance
// lists): a service served by one puts the chain at degradation level L2.
// A tier named "static" is always one.
func WithStaticTiers(names ...string) Option {
	return func(o *options) { o.ext.static = append(o.ext.static, names...) }
}
