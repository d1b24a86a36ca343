// Package chain composes registries into an ordered fallback chain that is
// itself a registry.Registry: discovery keeps answering while registry
// servers are down, partitioned, flapping or unreachable at start, and
// registrations come back by themselves when the servers do.
//
//	c, err := chain.New([]chain.Tier{
//		{Name: "etcd", Registry: etcdRegistry},
//		{Name: "consul", Registry: consulRegistry},
//	}, chain.WithSnapshot(store))
//
// The chain imports no backend: tiers are any registry.Registry (adapters,
// registrytest.Memory, another chain).
//
// # Reads
//
// Each service the chain is asked about gets an in-memory view fed by tier
// watches. GetService on such a service does no I/O: it copies the current
// view (GetServiceShared returns it without the deep copy, Lookup without
// any copy, GetServiceWithInfo with its source and age; Derive hands out a
// value made of it once per state, which is how the plugins convert to
// their frameworks' types once per change rather than once per read). A
// service's states enter the chain one way, from its tier watches (a
// watch's first state is the tier's list of the service), and the first
// GetService or Watch of a service answers from the snapshot if it holds
// the service while the watches' first states come (see First reads). The
// service is watched in the tiers it may need: under FirstHealthy the current source,
// the tiers above it (to fail back), the next tier that is up after a
// failure, and the tiers below one that has no opinion on the service
// (rule 3); under Merge every tier that is up. Watch("") also watches
// every tier for new services.
//
// # Health, failover, failback
//
// Each tier has a circuit breaker fed by probes (registry.Pinger, or a
// GetService of a service that does not exist), by the chain's own calls
// and by its watchers: WithFailureThreshold consecutive failures that wrap
// registry.ErrUnavailable open it, and the first successful probe closes
// it. A first read or re-read that is merely slow is not a failure. A tier whose circuit is open is skipped and its watchers
// are stopped; when it comes back they are restarted, so its first states
// after an outage are fresh. registry.ErrNotFound from a tier that is up is
// an answer, not a failure. A Chain is itself a registry.Pinger (up while
// one of its tiers is), so a chain can be a tier of another.
//
// When a service's source tier goes down, the view keeps its last state
// until the next tier's first state arrives, so watchers never see a gap;
// every Update's Source names the tier it came from ("snapshot" for the
// snapshot, "a+b" for a merge). A recovered tier becomes a source again
// only after it has stayed up for WithFailbackAfter (hysteresis), so a tier
// that flaps is failed over from once and not switched back to until it
// holds. Leaving the snapshot for a tier that is up needs no wait.
//
// # Writes
//
// The chain keeps the desired set of its own registrations and
// deregistrations and writes each to every writable tier (not
// Tier.ReadOnly) in parallel. A tier that is down or fails gets the write
// replayed in the background with capped, jittered backoff, and every tier
// gets the whole desired set replayed when it recovers (registration is
// idempotent). Register returns within its ctx even when every tier is
// down; WithStrictRegister makes it fail instead.
//
// registry.ErrInvalid means nothing was written. Before writing anything,
// Register checks the instance against every writable tier that
// implements registry.Validator (Consul's Meta limits, say); one refusal
// makes Register return that error and no tier is written. A tier without
// a Validator that still refuses the instance makes the chain undo the
// registration in the tiers that took it (as a deregistration, or back to
// the previous registration of the same Name and ID) and Register returns
// the refusal: either way no zombie registration is left.
//
// A tier whose state lacks one of the chain's own registrations that it
// had accepted (it restarted without its data, or someone deleted it) gets
// it written again at once, as after a recovery. Tiers without a
// registry.RegistrationReporter (and so, usually, without keepalives of
// their own) are checked for it after each successful probe: one read per
// service of this process.
//
// An instance the chain deregistered does not come back: while its
// deregistration is pending in a tier (that tier was down, say), and for
// twice the guard window after it, the chain leaves it out of every state
// a tier delivers, until the chain registers it again.
//
// Registrations reports, per instance, Live when every writable tier holds
// it: by the tier's own registry.RegistrationReporter where it has one (a
// lease lost underneath is seen), else by the tier having accepted the
// write. Since is when Live last changed, as on every adapter.
//
// # Snapshot
//
// Every state the chain accepts from a tier is kept in memory and, with
// WithSnapshot, saved to a registry.SnapshotStore: debounced, one
// SaveSnapshot per flush, at most one flush per WithFlushInterval. When no
// tier can serve a service, or the chain is frozen (Freeze), the snapshot
// answers with Source "snapshot" and Update.Time set to when its source was
// last seen healthy, so the age is visible. A chain started during a total
// outage answers from the stored snapshot at once.
//
// WithSnapshotMaxAge bounds how old a snapshot state may be and still be
// served. A service whose only state is older is not served: GetService
// returns an error wrapping registry.ErrUnavailable, and its watchers get
// that error once as a transient error instead of the state (a new
// watcher's first Next returns it), keeping the last state they had. A
// snapshot state that grows too old while served (a long outage) is
// reported to the watchers the same way at the moment it does; the next
// state a tier delivers goes to them as usual.
//
// # What readers see: the rules
//
// One pure function, decide (decide.go), turns what the chain knows of a
// service into what its readers see: the tiers' latest states, their health,
// each tier's authority for the service, the held drop, the last known good
// state and the operator's switches. Everything else (watchers, timers,
// re-reads, the store) only gathers its inputs and applies its decision.
// The rules, in order:
//
//  1. Frozen (Freeze): every service is served its last known good state
//     (the last non-empty state the chain accepted, kept beside the current
//     one, in memory and in the snapshot store), with Source "snapshot";
//     failing that the current snapshot state; a service the chain never
//     saw is not found. A drop held when the chain is frozen stays held as
//     it was (Status shows it), neither confirmed nor dropped, and goes on
//     when the chain is unfrozen.
//  2. Rolled back (Rollback): the service is served its last known good
//     state, Source "snapshot", until the operator calls ReleaseHold or a
//     tier delivers a state that is not a drop from it (the service is back).
//  3. Authority. A tier is an authority for a service's absence when it
//     delivered a non-empty state of the service in this chain's life, when
//     the snapshot's current or last known good state came from it (its
//     history survives restarts), or when it is writable and the chain holds
//     one of its own registrations of the service. An empty state (or
//     registry.ErrNotFound) from a tier that is not an authority is no
//     answer: the tier has no opinion on a service it never held (a mixed
//     fleet, a migration, another datacenter's registry), and the next tier
//     (or the snapshot) is asked instead. Only when no tier and no snapshot
//     hold anything is such an empty state served: the service does not
//     exist anywhere.
//  4. Source. Under FirstHealthy the first tier, in chain order, that is up
//     and has a state that counts (rule 3) is the source; a recovered tier
//     becomes the source again only once stable (WithFailbackAfter); a tier
//     that is up but whose first state is on its way is waited for, unless
//     it is late (WithCallTimeout). Under Merge the union of every such
//     tier is served, and a tier that is down (or whose watch restarts)
//     keeps its last state in the union: its instances still exist as far
//     as the chain knows, so they stay, marked stale (Answer.Stale), until
//     the tier answers again or, with WithSnapshotMaxAge, until that state
//     is older than the max age, counted from the tier's last answer
//     before it went down (its watch confirmed the state until then; a
//     state of a tier that is up but whose watch has not answered counts
//     from its own Time); the chain decides again at that moment. When no tier can serve, the snapshot serves the last
//     state the chain accepted, Source "snapshot", Time the last time its
//     source was seen healthy. Source and Time always say where a state came
//     from and how old it is, so a reader can tell a stale one.
//  5. Empty-push protection, from any tier, whatever its history. A
//     candidate with fewer than 1-Guard.MaxDropShare times as many
//     instances as the served state (a drop to zero included) is held: the
//     served state stays. Instances are counted, not matched: a rolling
//     replacement is no drop. Instances the chain itself deregistered are
//     left out of the count. A hold keeps removals back, never arrivals:
//     while a drop is held, readers get the held-back state together with
//     every instance the candidate adds or changes (a registry refilling
//     after a wipe, a process's own registration after a start from an old
//     snapshot), Source naming both. A
//     held drop goes through only once confirmed: re-read from the tiers it
//     came from Guard.Confirmations times, the reads spread over
//     Guard.Window, each still a drop (a re-read that is not a drop ends the
//     hold: the served state moves to it). So a real scale-to-zero reaches
//     readers within Window + WithCallTimeout while its tier answers (62 s
//     by default). Defaults: Window 60s, Confirmations 4, MaxDropShare 0.5.
//     The window outlasts the re-register backoff of the providers behind
//     the tiers: Kratos' contrib registries retry a lost registration after
//     1, 2, 4, ... up to 32 s; Go-Micro re-registers every RegisterInterval
//     (30 s by default); regchain's adapters retry within 5 s. A registry
//     restarted empty (or an operator's mistaken delete) is refilled by its
//     providers within that time and the drop is never served.
//     ReleaseHold lets a held drop through at once. Held, confirmed,
//     discarded and released drops are counted (Collector) and logged.
//  6. Max age. A snapshot state older than WithSnapshotMaxAge is kept but
//     not served (see Snapshot).
//
// A service's last known good state is replaced by each non-empty state
// the chain serves from a tier; a confirmed drop to zero leaves it as it
// was, so Freeze and Rollback can still bring it back.
//
// # First reads
//
// A service the chain does not hold yet is watched at once in every tier
// that is up; its first state is the first of those watches' first states
// that rules 3 and 4 accept. The first tier is waited for
// WithHedgeDelay (default 100ms), then a lower tier's first state counts
// too, and the snapshot's state, when it holds one young enough, is served
// at once meanwhile. A first read waits for a tier that is up no longer
// than WithCallTimeout, and not at all when no tier is up, or every one
// that is has failed its watch, and the snapshot does not hold the service:
// it then fails at once with an error wrapping registry.ErrUnavailable that
// says so, and the watches bring the state when a tier returns. A watch
// that is merely slow is not a tier failure: only probes, watch errors and
// calls that fail with registry.ErrUnavailable count.
//
// # Memory
//
// A service nobody read or watched for WithIdleTimeout (default 10m) is
// unwatched and leaves memory (it stays in the snapshot). A service that
// exists nowhere (its view is empty) and is not watched is forgotten after
// WithNegativeTTL (default 5s): the negative cache of absent names. At most
// WithMaxServices (default 10,000) services are kept: a new one evicts the
// least recently read service nobody watches, and when every one is
// watched, the read fails with an error wrapping registry.ErrUnavailable.
//
// # Errors
//
// The chain moves to the next tier only on errors wrapping
// registry.ErrUnavailable, as the registry contract says; a call the chain
// itself times out (WithCallTimeout) is reported as ErrUnavailable. Any
// other tier error is returned to the caller.
//
// # Visibility
//
// Status reports each tier's health and since when, each service's source,
// age, instance count, held drop, rollback and last known good, the pending
// registrations, the snapshot's age and the recent failovers, for readiness
// probes and an admin page; ReleaseHold, Rollback and Freeze are the
// operator's switches. GetServiceWithInfo returns the instances together
// with their source and age, taken from one state. Collector exports the
// same, plus failovers, failbacks, replays, held, confirmed, discarded and
// released drops, rollbacks and evictions, to Prometheus, with per-tier
// latency histograms of probes, reads and writes
// (regchain_chain_tier_{probe,read,write}_seconds). Health changes,
// failovers, failbacks, replays and holds are
// logged with log/slog (WithLogger).
//
// # Degradation levels, the switch file, drain
//
// Degradation reports the chain's level in the terms operators use; the
// chain is at the highest level whose condition holds:
//
//   - L0: every tier is up and every service is served live by a tier
//     that is not static.
//   - L1: failed over: a tier is down (its services are served by a lower
//     tier), or a service is served from the snapshot (frozen, rolled
//     back, or no tier can serve it).
//   - L2: a service is served by a static tier (a tier named "static", or
//     named in WithStaticTiers).
//   - L3: registrations cannot be written anywhere: the chain has writable
//     tiers and none is up. Serving continues.
//
// The level, with its reasons and since when, is in Status, in the
// Collector (regchain_chain_degradation_level) and in the log at every
// change (computed at every Status and at least every second).
//
// WithSwitchFile names a file the chain looks for every
// WithSwitchFileInterval (default 1s): while it exists the chain is frozen,
// when it is removed the chain is unfrozen, so an operator can flip a fleet
// with a config-management push.
//
// Drain deregisters the chain's own instances from every writable tier and
// returns once a watch of each tier that is up no longer shows them
// (bounded by its ctx): the shutdown path, before a process stops taking
// traffic.
//
// # Watching everything
//
// With a watch-all (Watch("")) running, a service's states in a tier come
// from the tier's watch-all once it has reported the service: one watch
// per tier whatever the number of services, and a failover finds the next
// tier's states already in. A service a tier's watch-all has not reported
// (the tier does not hold it, or the report is still on its way) is
// watched in that tier on its own, as without a watch-all, until the
// watch-all reports it. The chain keeps the tiers' Instances as they
// deliver them (registry.SharedNotifier): what a watch-all holds is one copy
// of the tier's states, not two.
//
// # Concurrency
//
// A Chain is safe for concurrent use. It runs one goroutine of its own
// while idle, the loop (loop.go), whatever its number of tiers and
// services: the loop reads every tier watcher that is a registry.Notifier
// (every backend of this module's is), reconciles the services after
// health changes, sweeps the services nobody needs and computes the
// degradation level; a tier's probe, a tier's replay and a snapshot save
// run on a goroutine of their own while they call the tier or the store,
// and so does a watch being (re)started and a watcher that is not a
// Notifier. Every state is delivered on the loop, one at a time: a slow
// slog handler slows every service. Close stops them all, ends the
// chain's watchers with registry.ErrClosed and saves the pending snapshot
// changes. Close does not close the tiers unless WithOwnTiers is set, and
// deregisters nothing.
//
// # Lock order
//
// A goroutine holding one of these locks takes only locks further down the
// list: c.mu (the service map), s.mu (one service), then any of the leaf
// locks, which are held only briefly and never while taking another:
// c.regMu (registrations), c.snap.mu (the snapshot), c.allMu (watch-all
// feeds and discovery), t.mu (a tier's health), the metrics' recentMu and
// the level's mu. c.goMu (spawning goroutines) may be taken under any of
// them. No lock is held while calling a tier, and a Feed's Publish, which
// never blocks, is the only call into a reader made under s.mu.
//
// # Files
//
// Each file owns one part; only chain.go, which builds and ends the
// others, and the files that read the Chain's fields use each other both
// ways (scripts/shape.sh -pairs lists such pairs).
//
//   - chain.go: New, the Chain type, Close, Ping, the reactions to a tier's
//     health.
//   - loop.go: the chain's one resident goroutine and what it runs.
//   - options.go: the options.
//   - state.go: a served state, its Derive memo, the tier masks.
//   - decide.go: the rules (pure).
//   - service.go: one service: its inputs, decisions carried out, its tier
//     watches, its held drop's confirming re-reads.
//   - tierwatch.go: watching a tier (per service, discovery, and the pump
//     that reads the tiers' watchers on the loop).
//   - read.go: reads (GetService, Lookup, View, Answer, Derive).
//   - list.go: ListServices.
//   - watch.go: Watch and the watch-all feeds.
//   - writes.go, registrations.go, regtiers.go, drain.go: the chain's own
//     registrations.
//   - tier.go, probe.go: a tier's health, and its probes.
//   - snapshot.go: the last accepted and last known good states, the store.
//   - ops.go, switchfile.go: the operator's switches.
//   - status.go, level.go, metrics.go, latency.go, collector.go: what the
//     chain reports, and its Prometheus collector.
//   - janitor.go: the service map: forgetting services nobody needs.
//   - tidy.go, feed.go: small helpers.
//
// # Caveats
//
// GetService returns deep copies, as the registry contract requires: three
// allocations for all the slices and structs, and a fresh Metadata map per
// instance (two allocations each, the runtime's minimum for a map).
// Go-Micro's registry/cache shares node Metadata maps between copies, so it
// allocates less. GetServiceShared costs one allocation but its Instances
// must not be modified; Lookup none; Derive none once the state's value is
// made.
//
// Held drops, rollbacks, the chain's own deregistrations (hidden from
// tiers that lag) and the negative cache are in memory: a restarted
// process starts them over (the last known good states are in the store).
//
// At start with a snapshot, a service the snapshot holds is served from it
// until the tiers' first states arrive (milliseconds when they are up),
// even if the tiers are healthy. The chain then waits for the first tier
// that is up rather than take a lower tier that answered first, but for no
// longer than WithCallTimeout: a tier that is up but whose watch does not
// answer is passed over.
//
// A tier that is not an authority for a service answers nothing about it:
// a service registered only in one tier is served from that tier's last
// state (or the snapshot) while that tier is down, even if another tier
// that is up says it does not exist. WithSnapshotMaxAge bounds how long.
package chain
