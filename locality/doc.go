// Package locality makes discovery prefer nearby instances: same zone, then
// same region, then anywhere, with hysteresis so that traffic does not flap
// between levels.
//
// The levels nest: the region level includes the zone. A reader that left
// its zone for its region reads the zone's remaining instances together
// with the other zones' of the region (never "the other zones only"), and
// the any level is every instance. A read returns one level's instances.
//
// # Metadata keys
//
// An instance's place is two metadata entries, KeyZone ("zone") and
// KeyRegion ("region"). These are the plain names the ecosystem already
// uses for the same idea: the failure-domain levels of Kubernetes
// (topology.kubernetes.io/zone, .../region) and of grpc's xDS Locality
// {region, zone}, Spring Cloud's "zone" metadata, and the example key of this
// module's own Instance.Metadata doc. Short lower-case names need no
// escaping in any backend (Consul Meta keys, etcd/ZooKeeper JSON). Apps set
// them without code in their framework's metadata:
//
//   - Kratos: kratos.Metadata(map[string]string{"zone": "eu-west-1a", "region": "eu-west-1"})
//   - go-micro: server.Metadata(map[string]string{"zone": "eu-west-1a", "region": "eu-west-1"})
//     (node metadata, which microplugin maps to Instance.Metadata)
//
// or through the environment: a registry wrapped by Wrap stamps REGCHAIN_ZONE
// and REGCHAIN_REGION (EnvZone, EnvRegion) on every instance it registers
// that lacks the key. Values the instance already carries are never
// overwritten.
//
// # The reader's locality
//
// A reader's own place is configured once, in Config.Self; an empty field
// falls back to the environment variables above, read once by Wrap. A
// reader with no zone skips the zone level, with no region the region
// level; a reader with neither sees every instance (Wrap is then a
// pass-through for reads).
//
// # Levels and matching
//
// LevelZone holds the instances whose zone equals the reader's zone (and,
// when both carry a region, whose region equals the reader's: zone names
// such as "a" may repeat across regions). LevelRegion holds those whose
// region equals the reader's and every instance of LevelZone (one that
// carries the reader's zone but no region included). LevelAny holds every
// instance. A read returns the instances of one level.
//
// # Thresholds and hysteresis
//
// A level is "healthy enough to stay" when it holds at least MinCount
// instances and at least MinShare of the service's instances; it is
// "recovered" when it holds at least RecoverCount and RecoverShare. The
// selector remembers the current level of each service and picks the
// nearest level that
//
//   - is nearer than the current one and recovered, or
//   - is the current one or farther and healthy enough to stay.
//
// So a zone is left when it falls below the lower thresholds and re-entered
// only once it is back above the higher ones; between the two the reader
// stays where it is (no flap). LevelAny always qualifies. The first read of
// a service starts from LevelZone.
//
// Defaults (zero values): MinCount 1, MinShare 0, RecoverCount = MinCount,
// RecoverShare = MinShare: a level is left when it is empty and re-entered
// when one instance is back. There is no default band because a zone of a
// single instance could otherwise never be re-entered; set RecoverCount
// above MinCount and/or RecoverShare above MinShare for hysteresis, e.g.
// MinShare 0.3 with RecoverShare 0.4 ("leave the zone below 30 % of the
// service, come back at 40 %"). RecoverCount and RecoverShare below the
// Min values are raised to them.
//
// Instances counted are the ones the wrapped registry returns: registries
// list live instances only, so "healthy" means registered and kept alive.
//
// # Wrap
//
// Wrap(reg, cfg) returns a Registry: a registry.Registry that applies the
// selector to GetService (and GetServiceShared) and to every Update of
// Watch, and stamps Register. Everything else goes through unchanged.
// Because it is itself a registry.Registry, it works under the chain's
// readers, kratosplugin, microplugin and any grpc-go resolver with no
// change to them. The level of each service is shared by all reads of one
// wrapped registry. A watcher drops an Update whose selected state equals
// the previous one it delivered for that service (the underlying change was
// outside the selected level).
//
// Level(service) tells a program which level a service's reads are on and
// why, in numbers (instances per level at the last read) and in words
// (which threshold kept or moved it). Self returns the reader's place and
// Unwrap the wrapped registry, which sees every level: grpcresolver reads
// through it, so that its balancer (package grpcbalancer) gets every level
// and moves between them on connectivity instead of on instance counts.
//
// Close ends the wrapper: its watchers end (their Next returns an error
// matching registry.ErrClosed and registry.ErrStopped) and every later
// call returns registry.ErrClosed. It closes the wrapped registry only
// with Config.Own: several wrappers over one chain (one per reader
// locality, or one per component) is the natural setup, and the chain is
// its creator's to close. Registrations made through a wrapper belong to
// the wrapped registry, which keeps them alive until it is closed or they
// are deregistered: closing a wrapper that does not own it leaves them
// registered.
//
// Optional capabilities: the wrapper has every optional capability of
// the registry it wraps, so that the chain, the plugins and the mirror
// take their fast paths through it. It is a registry.Pinger, a
// registry.RegistrationReporter and a registry.TTLRegistrar (RegisterTTL
// stamps as Register does) exactly when the wrapped registry is; its
// watchers are registry.Notifiers exactly when the wrapped registry's are.
// It is always a registry.SharedReader and a registry.Deriver, and a
// registry.Validator that checks the stamped instance (with the wrapped
// registry's own Validator when it has one). Registrations report what the
// wrapped registry holds, i.e. the stamped instances.
//
// Reads select once per state: the selected level's instances of a state
// of the wrapped registry are made by its first read (through the wrapped
// registry's Deriver, the chain's, or else a registry.Memo) and every read
// of the same state shares them; Derive runs its derive on them once per
// state and key too. So a plugin over a wrapped chain converts a state
// once, as it does over the chain itself.
//
// # Caveats
//
// A reader at LevelRegion sees no instance of another region even when
// they are healthier or closer in latency. Levels change only when the
// service's state changes (no timer). Reads and watchers of one wrapper
// share the level: a watcher that sees a state reads have not seen yet
// moves the level for the reads of the next state (a read's selection is
// kept for its state). The share is of
// the whole service as this registry sees it; with N zones evenly loaded
// each zone holds about 1/N of it, so choose MinShare below that.
//
// # Files
//
//   - keys.go: Locality, the metadata keys and the environment, Stamp.
//   - selector.go: levels, thresholds, Select and the Selector.
//   - wrap.go: Wrap, the wrapper's reads and writes.
//   - capability.go: the optional capabilities the wrapper mirrors.
//   - watch.go: the wrapper's watchers (Notifiers over Notifiers).
package locality
