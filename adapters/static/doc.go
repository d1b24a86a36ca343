// Package static is a read-only registry whose instances come from
// configuration and, optionally, from a JSON file reloaded when it changes.
// It is the last tier of a chain — primary → backup registry → snapshot →
// static list — so that a process that has never reached a registry and has
// no snapshot still has somewhere to send traffic. Its Updates say so:
// Source "static".
//
//	st, err := static.New(static.Config{File: "/etc/app/peers.json"})
//	c, err := chain.New([]chain.Tier{
//		{Name: "etcd", Registry: etcdReg},
//		{Name: "static", Registry: st, ReadOnly: true},
//	}, chain.WithSnapshot(store))
//
// # Rules
//
//   - The instances are Config.Instances plus the instances in Config.File;
//     a file instance replaces a configured one with the same Name and ID.
//     Every instance must pass registry.Validate: New rejects bad ones with
//     an error naming the instance and the fault.
//   - The file is a JSON array of instances in Kratos' ServiceInstance
//     layout (the registry.Instance encoding). It must exist and parse when
//     New runs. It is then checked every PollInterval; when its size,
//     modification time or identity (a rename over it) change, it is read
//     again. A file that is missing or does not parse on reload is logged
//     and ignored: the last good list stays (a half-written file never
//     empties the tier). Write it atomically (write a temporary file,
//     rename it over) to be safe.
//   - The file must be a regular file of at most MaxFileSize bytes: a FIFO,
//     a device or a larger file is refused at once (by New; on reload,
//     logged and ignored like a file that does not parse), never read.
//   - Register and Deregister return ErrReadOnly (with registry.ErrInvalid):
//     use the registry as a chain tier with ReadOnly set.
//   - Watchers get full states; a reload that changes a service delivers
//     its new state, empty if the service left the list.
//   - Update.Time is when the list was last loaded; Update.Revision counts
//     the loads that changed something.
//
// # Files
//
//   - registry.go: the Registry type, New, Close, Ping, GetService,
//     ListServices, and the file's reloads.
//   - config.go: Config and its defaults.
//   - register.go: Register and Deregister, which refuse.
//   - watch.go: Watch.
//   - errors.go: ErrReadOnly.
//   - codec.go: the file's format: reading, decoding and checking it.
//
// A Registry is safe for concurrent use.
package static
