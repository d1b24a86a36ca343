package file

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/regchain/regchain/internal/safefile"
	"github.com/regchain/regchain/registry"
)

// File layout. One bbolt file holds a meta bucket with the schema version
// and the registry's revision, and the data bucket of whoever opened it: the
// Registry's instance records or the Store's snapshot entries.
const (
	bucketMeta      = "regchain"
	bucketInstances = "instances"
	bucketSnapshot  = "snapshot"
	bucketLastGood  = "lastgood" // snapshot files from schema 2: each service's last non-empty state

	keySchema   = "schema"   // uint64 big-endian
	keyRevision = "revision" // int64 big-endian, Registry only

	// schemaVersion is the layout this build writes and the newest it reads.
	// 2 added the lastgood bucket to snapshot files; a writable open
	// migrates a version 1 file (of either kind) in place, in one
	// transaction.
	schemaVersion = 2
)

// extraBuckets are the buckets a file of a kind holds beside its data
// bucket.
var extraBuckets = map[string][]string{bucketSnapshot: {bucketLastGood}}

// otherKind and kindName tell a registry file from a snapshot store file.
var (
	otherKind = map[string]string{bucketInstances: bucketSnapshot, bucketSnapshot: bucketInstances}
	kindName  = map[string]string{bucketInstances: "registry (Open)", bucketSnapshot: "snapshot store (OpenStore)"}
)

// db is the bbolt file shared by Registry and Store: opening with the
// checks, and transactions that turn bbolt panics into errors.
type db struct {
	bolt     *bolt.DB
	path     string
	log      *slog.Logger
	readOnly bool

	mu     sync.Mutex // guards broken
	broken error      // set once bbolt panicked: the file is not used again
}

// openDB opens path, checks the file's structure and schema, and creates
// the meta and data buckets if the file is new.
func openDB(path string, cfg Config, data string) (*db, error) {
	timeout := cfg.timeout()
	start := time.Now()
	if !cfg.ReadOnly {
		if err := checkPlace(path); err != nil {
			return nil, err
		}
	}
	if cfg.ReadOnly {
		// A read-only open cannot initialize an empty file; bbolt would fail
		// with an obscure write error.
		if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() && info.Size() == 0 {
			return nil, fmt.Errorf("file: open %s: %w: %w: the file is empty, not a regchain file", path, ErrCorrupt, registry.ErrInvalid)
		}
	}
	if err := precheck(path, timeout, cfg.maxFileSize()); err != nil {
		return nil, err
	}
	if timeout > 0 {
		// bbolt gets what is left of the wait, at least one try (a zero
		// Timeout would make bbolt wait forever).
		if timeout -= time.Since(start); timeout <= 0 {
			timeout = -1
		}
	}
	log := cfg.logger()
	var file *os.File
	opts := &bolt.Options{
		Timeout:      timeout,
		ReadOnly:     cfg.ReadOnly,
		FreelistType: bolt.FreelistMapType,
		// Keep the file bbolt opens, to release its lock if bbolt panics
		// half-way through Open.
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := openFile(name, flag, perm, cfg, log)
			file = f
			return f, err
		},
	}
	b, err := openBolt(path, opts, &file)
	if err != nil {
		var pathErr *fs.PathError
		var errno syscall.Errno
		switch {
		case errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnsafe), errors.Is(err, registry.ErrInvalid):
			return nil, err
		case errors.Is(err, berrors.ErrTimeout):
			return nil, lockedErr(path, cfg.timeout())
		case errors.Is(err, syscall.ELOOP):
			return nil, unsafeErr(path, "it became a symbolic link")
		case errors.As(err, &pathErr), errors.As(err, &errno):
			return nil, fmt.Errorf("file: open %s: %w", path, err)
		default:
			// Every other error of bbolt's Open is about the content:
			// bad magic, version or checksum, a file too small.
			return nil, fmt.Errorf("file: open %s: %w: %w: %w", path, ErrCorrupt, registry.ErrInvalid, err)
		}
	}
	d := &db{bolt: b, path: path, log: log, readOnly: cfg.ReadOnly}
	if err := d.initSchema(data); err != nil {
		b.Close()
		return nil, err
	}
	return d, nil
}

// checkPlace refuses, for a writable open, a place where another user
// could change the file: a directory such a user owns or may write, and a
// symbolic link at path (it could point anywhere this process may write).
func checkPlace(path string) error {
	err := safefile.CheckDir(filepath.Dir(path))
	switch {
	case errors.Is(err, safefile.ErrUnsafe):
		return unsafeErr(path, err.Error()+": keep the file in a directory only this user (or root) can write")
	case err != nil:
		return fmt.Errorf("file: open %s: %w", path, err)
	}
	if info, err := os.Lstat(path); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return unsafeErr(path, "it is a symbolic link: give the path of the file itself")
	}
	return nil
}

func unsafeErr(path, why string) error {
	return fmt.Errorf("file: open %s: %w: %w: %s", path, ErrUnsafe, registry.ErrInvalid, why)
}

// openFile is bbolt's OpenFile. It never blocks on a FIFO and opens only
// a regular file of at most Config.MaxFileSize bytes; for writing, never
// through a symbolic link, and only a file of this process's user, made
// private (0600, with a warning) if group or others could read or write
// it.
func openFile(name string, flag int, perm os.FileMode, cfg Config, log *slog.Logger) (*os.File, error) {
	flag |= safefile.NonBlock
	if !cfg.ReadOnly {
		flag |= safefile.NoFollow
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if err := checkFile(f, cfg.maxFileSize()); err != nil {
		f.Close()
		return nil, err
	}
	if !cfg.ReadOnly {
		fixed, err := safefile.Private(f)
		if err != nil {
			f.Close()
			return nil, unsafeErr(name, err.Error())
		}
		if fixed != 0 {
			log.Warn("file: other users could read or write the file: made it private (0600); check that its content is yours",
				"path", name, "mode", fixed.String())
		}
	}
	return f, nil
}

// checkFile returns an error wrapping registry.ErrInvalid when f is not a
// regular file or is larger than limit.
func checkFile(f *os.File, limit int64) error {
	_, err := safefile.Check(f, limit)
	switch {
	case errors.Is(err, safefile.ErrTooLarge):
		return fmt.Errorf("file: open %s: %w: %w (Config.MaxFileSize)", f.Name(), registry.ErrInvalid, err)
	case err != nil:
		return fmt.Errorf("file: open %s: %w: %w", f.Name(), registry.ErrInvalid, err)
	}
	return nil
}

func lockedErr(path string, waited time.Duration) error {
	return fmt.Errorf("file: open %s: %w (waited %v): %w", path, ErrLocked, max(waited, 0), registry.ErrUnavailable)
}

// precheck reads the file at path and verifies its structure (see verify)
// before bbolt opens it: on some damage bbolt panics, loops, or crashes the
// process from a goroutine of its own already inside Open. It holds a shared
// lock while it reads, so it never reads a file another process is
// writing. A FIFO, a device or a directory, and a file larger than limit,
// are refused before anything is read or allocated. A missing, unreadable
// or empty file is left to bbolt, which creates it or reports the error.
func precheck(path string, timeout time.Duration, limit int64) error {
	f, err := os.OpenFile(path, os.O_RDONLY|safefile.NonBlock, 0)
	if err != nil {
		return nil
	}
	defer f.Close() // releases the lock
	if err := checkFile(f, limit); err != nil {
		return err
	}
	if err := lockShared(f, timeout); err != nil {
		if errors.Is(err, errWouldBlock) {
			return lockedErr(path, timeout)
		}
		return fmt.Errorf("file: open %s: lock: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("file: open %s: %w", path, err)
	}
	if info.Size() == 0 {
		return nil
	}
	if err := checkFile(f, limit); err != nil { // it may have grown while we waited for the lock
		return err
	}
	buf := make([]byte, info.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return fmt.Errorf("file: open %s: read: %w", path, err)
	}
	if err := verify(buf); err != nil {
		return fmt.Errorf("file: open %s: %w: %w: %w", path, ErrCorrupt, registry.ErrInvalid, err)
	}
	return nil
}

// openBolt is bolt.Open with its panics and memory faults (a truncated
// file is mapped past its end) turned into ErrCorrupt. precheck makes them
// unlikely; this is the second line.
func openBolt(path string, opts *bolt.Options, file **os.File) (b *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			// bbolt's half-opened DB cannot be closed, and its memory
			// mapping keeps the file open: unlock the file explicitly,
			// then close the descriptor (the mapping leaks).
			if *file != nil {
				unlock(*file)
				(*file).Close()
			}
			b, err = nil, fmt.Errorf("file: open %s: %w: %w: bbolt: %v", path, ErrCorrupt, registry.ErrInvalid, p)
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// initSchema checks the schema version, and on a new file, one missing a
// bucket of its kind, or one of an older schema (opened writable) writes
// the meta and data buckets and the schema version: the migration. It
// writes nothing to an intact current file, so opening one never writes.
func (d *db) initSchema(data string) error {
	var fresh, missing, old bool
	err := d.view(func(tx *bolt.Tx) error {
		for _, name := range append([]string{bucketMeta, data}, extraBuckets[data]...) {
			if k, v := tx.Cursor().Seek([]byte(name)); string(k) == name && v != nil {
				return fmt.Errorf("file: open %s: %w: %w: %s is a value, not a bucket", d.path, ErrCorrupt, registry.ErrInvalid, registry.Quote(string(name)))
			}
		}
		meta := tx.Bucket([]byte(bucketMeta))
		if meta == nil {
			fresh = true
			return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				return fmt.Errorf("file: open %s: %w: %w: a bbolt file without regchain's %q bucket (it has %s): not written by regchain",
					d.path, ErrSchema, registry.ErrInvalid, bucketMeta, registry.Quote(string(name)))
			})
		}
		v := meta.Get([]byte(keySchema))
		if len(v) != 8 {
			return fmt.Errorf("file: open %s: %w: %w: schema version is %d bytes, want 8", d.path, ErrCorrupt, registry.ErrInvalid, len(v))
		}
		switch ver := binary.BigEndian.Uint64(v); {
		case ver == 0:
			return fmt.Errorf("file: open %s: %w: %w: schema version 0", d.path, ErrCorrupt, registry.ErrInvalid)
		case ver > schemaVersion:
			return fmt.Errorf("file: open %s: %w: %w: schema version %d is newer than %d, the newest this build reads: use a newer regchain",
				d.path, ErrSchema, registry.ErrInvalid, ver, schemaVersion)
		case ver < schemaVersion:
			old = true
		}
		missing = tx.Bucket([]byte(data)) == nil
		for _, name := range extraBuckets[data] {
			missing = missing || tx.Bucket([]byte(name)) == nil
		}
		if other := otherKind[data]; missing && tx.Bucket([]byte(other)) != nil {
			return fmt.Errorf("file: open %s: %w: %w: this is a %s file, not a %s file: a Registry (Open) and a snapshot Store (OpenStore) need separate files",
				d.path, ErrWrongKind, registry.ErrInvalid, kindName[other], kindName[data])
		}
		return nil
	})
	if err != nil || !(fresh || missing || old) || d.readOnly {
		return err
	}
	err = d.update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		if fresh || old {
			if err := meta.Put([]byte(keySchema), binary.BigEndian.AppendUint64(nil, schemaVersion)); err != nil {
				return err
			}
		}
		for _, name := range append([]string{data}, extraBuckets[data]...) {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("file: open %s: initialize: %w", d.path, err)
	}
	return nil
}

// view runs a read transaction; see guard.
func (d *db) view(fn func(*bolt.Tx) error) (err error) {
	if err := d.brokenErr(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer d.guard(&err)
	return d.bolt.View(fn)
}

// update runs a write transaction; see guard.
func (d *db) update(fn func(*bolt.Tx) error) (err error) {
	if err := d.brokenErr(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer d.guard(&err)
	return d.bolt.Update(fn)
}

// guard turns a panic or memory fault inside bbolt (damage the check at
// Open did not see) into ErrCorrupt, and marks the file broken: bbolt has
// rolled the transaction back, but its state is not trusted any more.
func (d *db) guard(err *error) {
	p := recover()
	if p == nil {
		return
	}
	e := fmt.Errorf("file: %s: %w: %w: bbolt: %v", d.path, ErrCorrupt, registry.ErrInvalid, p)
	d.mu.Lock()
	if d.broken == nil {
		d.broken = e
	}
	d.mu.Unlock()
	d.log.Error("file: bbolt panicked; refusing further use of the file", "path", d.path, "panic", fmt.Sprint(p))
	*err = e
}

func (d *db) brokenErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.broken
}

func (d *db) close() error {
	if err := d.bolt.Close(); err != nil {
		return fmt.Errorf("file: close %s: %w", d.path, err)
	}
	return nil
}

// writeErr classifies a failed write: damage and read-only as they are,
// anything else (a full disk, an I/O error) as ErrUnavailable, on which the
// chain tries its next tier. Nothing was written: bbolt rolled back.
func writeErr(what string, err error) error {
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrReadOnly) || errors.Is(err, registry.ErrInvalid) {
		return fmt.Errorf("file: %s: %w", what, err)
	}
	return fmt.Errorf("file: %s: %w: %w", what, registry.ErrUnavailable, err)
}
