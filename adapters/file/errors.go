package file

import "errors"

// Errors of this package, in addition to the registry sentinels. Each is
// wrapped together with the registry sentinel that classifies it, so both
// errors.Is(err, file.ErrLocked) and errors.Is(err, registry.ErrUnavailable)
// hold for a locked file.
var (
	// ErrLocked is returned by Open and OpenStore when another process, or
	// another Open of the same file in this process, holds the file's lock
	// for longer than Config.Timeout. It comes with registry.ErrUnavailable.
	ErrLocked = errors.New("file: locked by another process or another open of the same file")

	// ErrCorrupt is returned when the file is truncated, is not a bbolt file,
	// or its pages or records are damaged: by Open and OpenStore when the
	// check of the file fails, and by any later call if bbolt trips over
	// damage it did not see before. It comes with registry.ErrInvalid. After
	// it, the Registry or Store refuses further work: close it and move or
	// restore the file.
	ErrCorrupt = errors.New("file: corrupt or truncated")

	// ErrSchema is returned by Open and OpenStore when the file was written
	// with a newer schema version than this build reads, or is a bbolt file
	// that regchain did not write. It comes with registry.ErrInvalid.
	ErrSchema = errors.New("file: unsupported schema")

	// ErrWrongKind is returned by Open for a snapshot store's file and by
	// OpenStore for a registry's file: the two need separate files. It comes
	// with registry.ErrInvalid; nothing is written to the file.
	ErrWrongKind = errors.New("file: wrong kind of file")

	// ErrUnsafe is returned by a writable Open and OpenStore when another
	// user could change the file: its directory is owned by another user
	// (root aside) or writable by group or others (/tmp is), the file is
	// owned by another user, or the path is a symbolic link. It comes with
	// registry.ErrInvalid. A file of the process's own user that others
	// could read or write is not refused: it is made private (0600), with a
	// warning. Read-only opens (for inspection) check none of this.
	ErrUnsafe = errors.New("file: another user could change the file")

	// ErrReadOnly is returned by writes to a file opened with
	// Config.ReadOnly. It comes with registry.ErrInvalid: the write can
	// never succeed, so the chain does not replay it, and nothing is
	// written.
	ErrReadOnly = errors.New("file: opened read-only")
)
