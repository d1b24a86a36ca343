// Package file keeps service registrations and the chain's snapshot in a
// local bbolt file.
//
// It has two uses:
//
//   - Registry, from Open, is a registry.Registry for a single process:
//     development, tests, one host. Every change is written to the file in
//     one fsync'ed transaction, together with a revision counter, before it
//     is visible; reads come from memory; watchers are fed in-process, in
//     the order of the changes, with Source "file".
//   - Store, from OpenStore, is the registry.SnapshotStore the chain falls
//     back to when every registry is down: per service, the last accepted
//     Update (instances, source, revision, time) and when it was saved.
//     SaveSnapshot writes a batch in one transaction; LoadSnapshot reads
//     everything back. 1,000 services of 10 instances take 1.3 MB of
//     entries, save in one transaction in 15–40 ms (fsync included) and
//     load in 10–20 ms on two shared cores.
//
// A Store keeps, beside each service's last saved state, its last known
// good (non-empty) state whenever the saved state is empty, written in the
// same transaction (registry.LastGoodSaver), so that the chain's Freeze and
// Rollback can go back to it after an empty state was accepted.
//
// Files are created with mode 0600; the directory must exist. A file holds
// a schema version; a newer one gives ErrSchema rather than a misreading.
// Schema 2 added the last good states; a file of schema 1 opens as it is
// read-only, and a writable open migrates it in place in one transaction.
//
// # Files other users could change
//
// The file is trusted: a Store's entries are served when every registry is
// down. So a writable Open or OpenStore refuses, with ErrUnsafe, a file
// another user could change: one in a directory owned by another user
// (root aside) or writable by group or others — a shared /tmp is — one
// owned by another user, and a symbolic link at the path (checked again
// when the file is opened, with O_NOFOLLOW). A file of the process's own
// user that group or others could read or write (0666, say) is made
// private (0600) with a warning: its content is the caller's to check.
// These checks are made on Unix systems; read-only opens, for inspection
// (regctl snapshot), make none of them.
//
// # Hostile files
//
// A FIFO, a device or a directory at the path is refused at once (the
// file is opened without blocking and must be a regular file), and so is a
// file larger than Config.MaxFileSize (a runaway, a sparse file of a
// terabyte), before anything is read or allocated: both with an error
// wrapping registry.ErrInvalid.
//
// # Damaged files
//
// A truncated, corrupt or foreign file gives an error wrapping ErrCorrupt
// (or ErrSchema) and registry.ErrInvalid; it never panics and never hangs.
// bbolt checksums its meta pages only, and trusts its data pages: a damaged
// page can make it panic, read outside the file, or loop. So Open reads the
// file once and walks its page tree, bounded, before bbolt does; bbolt's
// own panics and memory faults (debug.SetPanicOnFault) are recovered into
// ErrCorrupt, after which the Registry or Store refuses further work.
// Snapshot entries carry a CRC-32C over key and value: a damaged entry is
// skipped and logged, never returned as data (Store.Load names them). Registry records (the
// instance's JSON, under "name/id") are validated when loaded; one that
// does not decode is skipped and logged.
//
// A write that fails (a full disk, an I/O error) returns an error wrapping
// registry.ErrUnavailable and changes nothing: bbolt rolls the transaction
// back, the Registry's memory and watchers are updated only after a
// commit, and a Store keeps its previous snapshot.
//
// # Files
//
//   - registry.go: the Registry type, Open, Close, Ping, GetService,
//     ListServices.
//   - config.go: Config and its defaults.
//   - register.go: Register and Deregister, one transaction each.
//   - watch.go: Watch.
//   - store.go: the snapshot Store.
//   - db.go: opening the file safely and checking its kind and schema;
//     verify.go: the bounded walk of its pages before bbolt reads them;
//     lock_flock.go, lock_other.go: the lock's wait.
//   - errors.go: the errors of this package.
//   - codec.go: registry records and snapshot entries, encoded and
//     checked.
//
// # Caveats
//
// One process at a time: bbolt takes an exclusive flock on the file. A
// second process, or a second Open of the same file in the same process
// (Linux locks per open file, not per process), waits up to Config.Timeout
// and then fails with ErrLocked; it never waits forever. flock may not work
// on network file systems: keep the file on a local disk. A Registry and a
// Store need separate files: opening one kind's file as the other gives
// ErrWrongKind and writes nothing.
//
// Registrations have no lease: they stay in the file until Deregister,
// across Close, restarts and crashes. The Registry does not notice changes
// made to the file by anything else.
//
// Every write is fsync'ed: a Register costs a disk sync. The file grows to
// hold its largest state and does not shrink (bbolt reuses the free pages);
// bbolt's "compact" command shrinks a closed file.
//
// Open reads the whole file once to check it: time and memory in
// proportion to the file (a few milliseconds for a 4 MB snapshot file). If
// bbolt panics inside Open on a damaged file, the file descriptor and lock
// are released but bbolt's memory mapping of the file is not.
//
// Loaded snapshot endpoints are checked for the shape scheme://host, not
// parsed as URLs again: SaveSnapshot validated them with registry.Validate
// and the CRC proves they are what it saved.
package file
