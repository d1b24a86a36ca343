package registry

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Registry is a service registry: a backend (etcd, Consul, ZooKeeper, a bbolt
// file), the fallback chain over several of them, or the in-memory reference
// implementation in registrytest.
//
// Implementations are safe for concurrent use by multiple goroutines. Every
// method honours its ctx for the duration of the call only; no method stores
// it, except Watch, whose ctx bounds the watcher's life.
type Registry interface {
	// Register adds or updates the instance (idempotent per Name and ID) and
	// keeps it alive (lease, session, TTL check) until Deregister or Close.
	// ctx bounds the first write only: keepalives run on the registry's own
	// context. Invalid input returns ErrInvalid and writes nothing.
	Register(ctx context.Context, in *Instance) error

	// Deregister stops the keepalive and removes the instance. Only Name and
	// ID are required. Deregistering an unknown instance is not an error.
	Deregister(ctx context.Context, in *Instance) error

	// GetService returns the service's instances sorted by ID, or ErrNotFound
	// when it has none.
	GetService(ctx context.Context, name string) ([]*Instance, error)

	// ListServices returns the names of the services that have at least one
	// instance, sorted.
	ListServices(ctx context.Context) ([]string, error)

	// Watch starts a watcher on the service name, or on every service when
	// name is "". It returns at once; the watcher lives until Stop, until ctx
	// is done or until the registry is closed.
	Watch(ctx context.Context, name string) (Watcher, error)

	// Close stops keepalives and every goroutine the registry started and
	// makes every later call return ErrClosed. It does not deregister: the
	// records go when their lease or TTL runs out, or at once where the
	// backend ties them to a session that Close ends (ZooKeeper). Close is
	// idempotent.
	Close() error
}

// Watcher delivers the states of a service (or, for a watch-all, of every
// service, one Update per changed service).
//
// Next is meant for one goroutine; Stop may be called from any goroutine, any
// number of times.
type Watcher interface {
	// Next blocks until there is a new state and returns it. The first call
	// returns the current state at once: for a named service even when it has
	// no instances; for a watch-all one Update per service that has
	// instances. Later calls return only states that differ from the previous
	// one of the same service; a watch-all hears of a service once it has
	// instances, and then of every state down to the empty one. Each Update
	// is the caller's to keep.
	//
	// Every terminal error matches ErrStopped, so one errors.Is check ends a
	// watch loop: after Stop, Next returns ErrStopped; after the Watch ctx is
	// done, an error matching both ErrStopped and the ctx's error; after the
	// registry's Close, an error matching both ErrStopped and ErrClosed. Any
	// other error is transient: the watcher retries on its own and a later
	// Next may return an Update.
	Next() (*Update, error)

	// Stop ends the watcher and unblocks a pending Next.
	Stop() error
}

// Update is the complete current state of one service.
type Update struct {
	// Service is the service's name.
	Service string
	// Instances is the complete instance set, sorted by ID; never a delta.
	// Empty means authoritatively empty.
	Instances []*Instance
	// Source names what produced the state: "etcd", "consul", "zookeeper",
	// "file", "snapshot", or a chain tier's name.
	Source string
	// Revision is the backend's revision or index for this state, when the
	// backend has one (etcd revision, Consul index, ZooKeeper zxid); else 0.
	Revision int64
	// Time is when the source last confirmed this state.
	Time time.Time
}

// Clone returns a deep copy of u. Clone of nil is nil.
func (u *Update) Clone() *Update {
	if u == nil {
		return nil
	}
	out := *u
	out.Instances = CloneInstances(u.Instances)
	return &out
}

// SameState reports whether u and o have the same service, source and
// instances; Revision and Time are ignored. Watchers drop an Update that has
// the same state as the previous one.
func (u *Update) SameState(o *Update) bool {
	if u == nil || o == nil {
		return u == o
	}
	return u.Service == o.Service && u.Source == o.Source && EqualInstances(u.Instances, o.Instances)
}

// Pinger is implemented by registries that can check their backend's health
// cheaply (the chain's probes use it). Ping returns nil when the backend
// answers, an error wrapping ErrUnavailable when it does not, ErrClosed after
// Close.
type Pinger interface {
	Ping(ctx context.Context) error
}

// RegistrationState describes one local registration of a keepalive backend.
type RegistrationState struct {
	// Instance is a copy of what was registered.
	Instance *Instance
	// Live is true while the backend holds the registration (lease granted,
	// key present, session alive), false while it is being re-registered.
	Live bool
	// Since is when Live last changed (for a registry that keeps a desired
	// set across tiers, the chain, when the registration last changed).
	Since time.Time
	// Attempts counts failed re-registration attempts since the last success.
	Attempts int
	// LastError is the last re-registration error, nil once live again.
	LastError error
}

// RegistrationReporter is implemented by registries that keep registrations
// alive, to tell which ones are live and which are pending re-registration.
type RegistrationReporter interface {
	// Registrations returns the state of every live-or-pending registration,
	// sorted by (Name, ID).
	Registrations() []RegistrationState
}

// SortRegistrations sorts s in place by (Name, ID), the order
// RegistrationReporter promises.
func SortRegistrations(s []RegistrationState) {
	slices.SortFunc(s, func(a, b RegistrationState) int {
		if c := strings.Compare(a.Instance.Name, b.Instance.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Instance.ID, b.Instance.ID)
	})
}

// SnapshotStore persists the last accepted Update per service, the last
// resort of the chain. adapters/file implements it.
type SnapshotStore interface {
	// SaveSnapshot stores the updates, replacing earlier entries of the same
	// services, in one atomic transaction: all are stored or none.
	SaveSnapshot(ctx context.Context, updates []*Update) error
	// LoadSnapshot returns every stored entry. Entry.Update.Time is when the
	// source last confirmed the state, so Entry.Age is how stale it is.
	LoadSnapshot(ctx context.Context) ([]SnapshotEntry, error)
}

// SnapshotEntry is one service's stored state.
type SnapshotEntry struct {
	Update *Update
	// LastGood is the service's last non-empty state when it differs from
	// Update (Update is empty after a confirmed drop, say); nil otherwise.
	// Only stores that implement LastGoodSaver keep it.
	LastGood *Update
	// Saved is when the entry was written.
	Saved time.Time
}

// Age returns how old the entry's state is at now: now minus the time its
// source last confirmed it.
func (e SnapshotEntry) Age(now time.Time) time.Duration {
	if e.Update == nil || e.Update.Time.IsZero() {
		return now.Sub(e.Saved)
	}
	return now.Sub(e.Update.Time)
}

// SharedReader is implemented by registries that answer reads from memory
// (the chain). GetServiceShared is GetService without the deep copy: the
// slice is the caller's, but the Instances it holds are shared with the
// registry and other readers. They never change once returned (a new state
// holds new Instances) and must not be modified. Callers that convert
// instances into their own types anyway (the plugins) save a copy.
type SharedReader interface {
	GetServiceShared(ctx context.Context, name string) ([]*Instance, error)
}

// GetServiceShared reads through r's SharedReader when it has one, and
// falls back to GetService otherwise. The Instances returned must not be
// modified.
func GetServiceShared(ctx context.Context, r Registry, name string) ([]*Instance, error) {
	if sr, ok := r.(SharedReader); ok {
		return sr.GetServiceShared(ctx, name)
	}
	return r.GetService(ctx, name)
}

// Notifier is implemented by watchers that can say when Next would not
// block (registry.Feed, which every backend of this module uses), so that a
// consumer of many watchers (the chain: one per service and tier) reads
// them all from one goroutine instead of one goroutine each.
//
// Notify arranges for fn to be called whenever a state, an error or the
// end becomes ready for Next, and at once if one is ready now; a later
// Notify replaces fn. fn runs on the producer's goroutine, possibly with
// the producer's locks held: it must return at once and must not call
// back into the watcher (hand the work to another goroutine). A call may
// find nothing ready (a state equal to the last one delivered was
// dropped): TryNext then says so. TryNext is Next that returns ok false
// instead of waiting; with ok true it returns what Next would have.
// Next and TryNext are not to be called concurrently.
type Notifier interface {
	Notify(fn func())
	TryNext() (u *Update, ok bool, err error)
}

// SharedNotifier is a Notifier whose states can be taken without the deep
// copy Next makes (registry.Feed is one): TryNextShared is TryNext, but the
// Instances of the Update it returns are shared with the producer and with
// every other reader of the state, and must not be modified; the Update
// itself and its Instances slice are the caller's. A consumer that keeps
// many states (the chain) holds the producer's Instances instead of a copy
// of each.
type SharedNotifier interface {
	Notifier
	TryNextShared() (u *Update, ok bool, err error)
}

// Deriver is implemented by registries whose states are immutable values in
// memory (the chain). Derive returns what derive makes of name's current
// Instances, calling derive once per state and key: every other call for
// the same state and key, from any goroutine, returns that value (a call
// that comes while derive runs waits for it) without calling derive or
// allocating. A state republished with the same Instances (equal, each
// with its endpoints in the same order) keeps its values; any change starts
// afresh, and a state's values are dropped with it. Derive fails as
// GetService does (ErrNotFound when the service has no instances, so
// derive never sees an empty state).
//
// The plugins use it to convert a state into their framework's types once
// per state change rather than once per read. derive must not modify the
// Instances it is given (they are shared) nor keep the slice, must not
// call back into the registry, and its value must not change once
// returned: it is shared by every caller. key tells apart the values of
// different callers (use an unexported type of your package); it must be
// comparable, else Derive returns ErrInvalid. A registry may keep a few
// keys per state only (MaxDerivedKeys): beyond them derive runs on every
// call. StateMemo is the memo of one state a Deriver keeps; Memo keeps the
// same promise over any registry.
type Deriver interface {
	Derive(ctx context.Context, name string, key any, derive func([]*Instance) any) (any, error)
}
