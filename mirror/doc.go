// Package mirror keeps the records of selected services (or all) of one
// registry, the source, present in another, the target: a dual-active
// mirror between two datacenters' registries of any kinds (etcd, Consul,
// ZooKeeper, a file, a chain).
//
// # Rules
//
//   - What is mirrored: every instance the source lists for the selected
//     services (Config.Services; empty means every service, through a
//     watch-all) that does not carry KeyOrigin. An instance that carries
//     KeyOrigin is itself a mirror of another registry and is never mirrored
//     again: two mirrors in opposite directions between A and B (or a ring)
//     never loop.
//   - How it is written: through the target's own Register, with KeyOrigin
//     set to Config.Origin in its metadata. The record therefore lives on the
//     mirror's own lease (etcd), TTL check (Consul) or session (ZooKeeper)
//     and is kept alive by the target registry's keepalive: if the mirror
//     process dies, its records expire after the target's TTL (etcd lease
//     TTL, Consul's TTL check plus its deregister-critical-after, ZooKeeper's
//     session timeout) instead of lingering. The instance keeps its Name and
//     ID, so readers of both sides see one instance under one key.
//   - Collisions: when the target already holds a record of the same Name
//     and ID that the mirror did not write (no KeyOrigin, or another
//     origin's) — the same instance registered in both datacenters, as a
//     chain that writes to every tier does — the mirror leaves it alone.
//   - Deletions: an instance gone from the source is deregistered from the
//     target. Records of this origin found in the target that the source
//     does not hold (left by an earlier run of the mirror) are deregistered
//     too.
//   - Drops at the source are held, by the chain's own guard rules
//     (Config.Guard is a chain.Guard; both use internal/dropguard): a state
//     of a service with fewer than 1-MaxDropShare times as many instances
//     as the last state the mirror accepted (a drop to zero included) is
//     held, and the target keeps the accepted state, until the mirror has
//     re-read the service from the source Confirmations times over Window,
//     each time still a drop (defaults: 4 reads over 60s, MaxDropShare
//     0.5). A state that is no drop ends the hold; the accepted state's
//     instances that this state still lacks stay in the target until the
//     next re-read (Window/Confirmations later) confirms them gone, because
//     after a wipe the providers come back one at a time and the last ones
//     must not be removed meanwhile (the chain's guard, which serves reads
//     rather than writes records into another datacenter, passes such a
//     state at once). So a source that is
//     wiped (an operator's delete of the namespace, a registry restarted
//     empty) or restored from an old backup does not empty the other
//     datacenter: its providers re-register within the window and the
//     mirror never withdraws their records. A real scale-down to zero
//     reaches the target after the window. Holds are listed in
//     Stats().Holds, counted in Stats().Guard and logged; ReleaseHold lets
//     one through at once. The first state the mirror sees of a service
//     (after New, or after the source was stale: its records are withdrawn
//     then and nothing is left to protect) is accepted as it is.
//   - Source outage: while the source is unreachable the mirrored records
//     stay as they were, for at most Config.StaleAfter (default 30s) after
//     the first failure; then they are deregistered, since a datacenter
//     whose registry is unreachable that long has most likely lost its
//     instances too. When the source answers again the mirror reconciles
//     in full.
//   - Target outage: writes that fail are retried with capped, jittered
//     backoff (Config.MaxBackoff); the target registry's own keepalives
//     re-create records the outage lost. After a failed write, and every
//     Config.ResyncInterval, the mirror reconciles in full: for each
//     mirrored service it reads the target and registers what is missing,
//     deregisters what is extra.
//   - Stopping, two ways. Close stops the mirror and leaves its records in
//     the target to expire after their TTL, as a killed mirror does: for a
//     restart or a hand-over to another mirror process, during which the
//     records stay present. (They are kept alive by the target registry's
//     keepalives, so their TTL runs from when the target registry is
//     closed or the process ends; the mirror never closes it.) Withdraw stops it and deregisters every record
//     it wrote (within its ctx; what it cannot remove in time expires): for
//     a mirror removed for good. Both wait for Run to return. A Run whose
//     ctx ends behaves as after Close.
//   - TTL: with Config.TTL set, the records are written with that time to
//     live (registry.TTLRegistrar: the etcd lease TTL, the Consul check
//     TTL), whatever the target registry's default; a target that cannot
//     give a record its own TTL (ZooKeeper: a session's timeout is the
//     client's; a file) makes New fail. If zero, the target's default
//     (etcd and Consul adapters: 15s).
//   - Origin names must be unique per target: a mirror removes the records
//     of its origin it did not write (leftovers of an earlier run), so two
//     mirrors writing into one target under one origin would remove each
//     other's records. Mirrors in opposite directions may share a name
//     (each only ever removes records in its own target).
//
// # Bounds
//
// A change at the source reaches the target after the source's watch
// delivers it plus one target write; a held drop after Guard.Window plus
// one source read. Records of a dead or closed mirror are gone after their
// TTL. Records of an unreachable source are gone after
// StaleAfter plus MaxBackoff (the mirror checks the source at that pace
// while it fails) plus one target write. After an outage of either side the
// mirror converges within MaxBackoff plus one full read and the writes it
// needs.
//
// # Caveats
//
// The mirror reads the target's state per service when it reconciles one;
// a record of the same key registered natively in the target after the
// mirror wrote it takes the key over (and the mirror then leaves it).
// Metadata keys must be accepted by every backend, hence KeyOrigin's plain
// lower-case, dash-separated form (Consul refuses dots in Meta keys).
package mirror
