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
//   - Stop: when Run's ctx ends the mirror deregisters what it wrote
//     (within one Config.Timeout in all) and returns. A mirror that is
//     killed instead leaves its records to expire as above.
//   - Origin names must be unique per target: a mirror removes the records
//     of its origin it did not write (leftovers of an earlier run), so two
//     mirrors writing into one target under one origin would remove each
//     other's records. Mirrors in opposite directions may share a name
//     (each only ever removes records in its own target).
//
// # Bounds
//
// A change at the source reaches the target after the source's watch
// delivers it plus one target write. Records of a dead mirror are gone
// after the target's TTL. Records of an unreachable source are gone after
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
