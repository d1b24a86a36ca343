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
// view (GetServiceShared returns it without the deep copy). The first
// GetService or Watch of a service answers from the snapshot if it holds
// the service, else reads the first tier that is up; then the service is
// watched in the tiers it may need: under FirstHealthy the current source,
// the tiers above it (to fail back) and, after a failure, the next tier
// that is up; under Merge every tier that is up. Watch("") also watches
// every tier for new services.
//
// # Health, failover, failback
//
// Each tier has a circuit breaker fed by probes (registry.Pinger, or a
// GetService of a service that does not exist), by the chain's own calls
// and by its watchers: WithFailureThreshold consecutive failures that wrap
// registry.ErrUnavailable (or time out) open it, and the first successful
// probe closes it. A tier whose circuit is open is skipped and its watchers
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
// A tier that rejects an instance as invalid (registry.ErrInvalid: say
// Consul refusing metadata that etcd accepts) makes Register return that
// error, but the instance stays in the desired set and in the tiers that
// accepted it; the rejecting tier is not retried. Registrations reports it
// not Live, with the rejection as LastError, until a Register (or a replay
// after the tier recovers) that the tier accepts; Deregister removes it as
// usual.
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
// # Empty-push guard
//
// A state that drops a service to zero instances, or removes more than
// Guard.MaxDropShare of them at once, is held when it comes from a tier
// that just became the service's source or changed health less than
// Guard.Window ago: the previous state keeps being served and the tier is
// re-read after Guard.Grace. The re-read state then goes through, drop or
// not, so a dead last instance does not live forever. A drop from a steady
// tier goes through at once. Held, confirmed and discarded drops are
// counted.
//
// # Visibility
//
// Status reports each tier's health, each service's source and age, the
// pending registrations and the snapshot, for readiness probes. Collector
// exports the same, plus failovers, failbacks, replays and guard counts, to
// Prometheus. Health changes, failovers, failbacks, replays and holds are
// logged with log/slog (WithLogger).
//
// # Concurrency
//
// A Chain is safe for concurrent use. Its goroutines (probes, replays,
// watchers, snapshot flusher) run on the chain's own context; Close stops
// them all, ends the chain's watchers with registry.ErrClosed and saves
// the pending snapshot changes. Close does not close the tiers unless
// WithOwnTiers is set, and deregisters nothing.
//
// # Caveats
//
// GetService returns deep copies, as the registry contract requires; with
// metadata that costs one allocation per instance for its map on top of
// three for the slices and structs. GetServiceShared costs one allocation
// but its Instances must not be modified.
//
// A service stays watched, in memory and in the snapshot, until Close once
// it was asked for; watching many services costs one watch per needed tier
// each.
//
// The first GetService of a service during the probe interval after a tier
// died (before its circuit opens) may wait up to WithCallTimeout for that
// tier; later reads of watched services never wait for a tier.
//
// At start with a snapshot, a service the snapshot holds is served from it
// until the tiers' first states arrive (milliseconds when they are up),
// even if the tiers are healthy. The chain then waits for the first tier
// that is up rather than take a lower tier that answered first, but for no
// longer than WithCallTimeout: a tier that is up but whose watch does not
// answer is passed over.
//
// Registrations().Since is when the instance was last registered or
// deregistered through the chain, not when its Live state last changed.
package chain
