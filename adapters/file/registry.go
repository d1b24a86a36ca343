package file

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/registry"
)

// Source is the Update.Source of the Registry's watchers.
const Source = "file"

// Registry is a registry.Registry kept in a bbolt file, for a single
// process: development, tests, a single host. Every registration is written
// to the file (one fsync'ed transaction per change) before it is visible;
// reads are served from memory. Registrations have no lease: they stay in
// the file across Close and Open until Deregister.
//
// Registry is safe for concurrent use.
type Registry struct {
	d   *db
	hub registry.Hub

	wmu sync.Mutex // serializes writes and Close; held across the file write

	mu       sync.RWMutex                    // guards the fields below; writers also hold wmu
	services map[string][]*registry.Instance // sorted by ID, never empty
	rev      int64                           // revision of the last change, as in the file
	closed   bool
}

var (
	_ registry.Registry = (*Registry)(nil)
	_ registry.Pinger   = (*Registry)(nil)
)

// Open opens or creates (mode 0600) the registry file at path and loads
// its registrations. The directory must exist. Open fails with an error
// wrapping ErrLocked if another process holds the file for longer than
// cfg.Timeout, ErrCorrupt for a damaged or truncated file, ErrSchema for a
// newer or foreign file. Records that cannot be decoded are skipped and
// logged.
func Open(path string, cfg Config) (*Registry, error) {
	d, err := openDB(path, cfg, bucketInstances)
	if err != nil {
		return nil, err
	}
	r := &Registry{d: d, services: make(map[string][]*registry.Instance)}
	if err := r.load(); err != nil {
		d.close()
		return nil, err
	}
	return r, nil
}

func (r *Registry) load() error {
	return r.d.view(func(tx *bolt.Tx) error {
		rev, err := readRevision(tx, r.d.path)
		if err != nil {
			return err
		}
		r.rev = rev
		b := tx.Bucket([]byte(bucketInstances))
		if b == nil {
			return nil // a new file opened read-only
		}
		return b.ForEach(func(k, v []byte) error {
			in, err := decodeRecord(k, v)
			if err != nil {
				r.d.log.Warn("file: skipping a record that cannot be decoded", "path", r.d.path, "key", registry.Clip(string(k)), "err", err)
				return nil
			}
			r.services[in.Name] = append(r.services[in.Name], in)
			return nil
		})
	})
}

func readRevision(tx *bolt.Tx, path string) (int64, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		return 0, nil
	}
	v := meta.Get([]byte(keyRevision))
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return 0, fmt.Errorf("file: %s: %w: %w: revision is %d bytes, want 8", path, ErrCorrupt, registry.ErrInvalid, len(v))
}

// Path returns the file's path.
func (r *Registry) Path() string { return r.d.path }

// Register implements registry.Registry: it writes the instance to the file
// and then makes it visible. Re-registering an equal instance writes
// nothing. A failed write (full disk, I/O error) returns an error wrapping
// registry.ErrUnavailable and changes nothing, in the file or in memory.
func (r *Registry) Register(ctx context.Context, in *registry.Instance) error {
	val, err := registry.Marshal(in)
	if err != nil {
		return fmt.Errorf("file: register: %w", err)
	}
	in = in.Clone()
	return r.write(ctx, "register "+in.String(), in.Name, in.ID, func(old []*registry.Instance, i int, found bool) ([]*registry.Instance, []byte, bool) {
		if found && old[i].Equal(in) {
			return nil, nil, false
		}
		next := slices.Clone(old)
		if found {
			next[i] = in
		} else {
			next = slices.Insert(next, i, in)
		}
		return next, val, true
	})
}

// Deregister implements registry.Registry; only in.Name and in.ID are
// used. Removing an absent instance writes nothing and is not an error.
func (r *Registry) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := registry.ValidateKey(in); err != nil {
		return fmt.Errorf("file: deregister: %w", err)
	}
	return r.write(ctx, "deregister "+in.Key(), in.Name, in.ID, func(old []*registry.Instance, i int, found bool) ([]*registry.Instance, []byte, bool) {
		if !found {
			return nil, nil, false
		}
		return slices.Delete(slices.Clone(old), i, i+1), nil, true
	})
}

// write applies one change to (name, id): change gets the service's current
// instances and the position of id in them, and returns the new instances,
// the record to store (nil: delete) and whether anything changes. The file
// is written first, in one transaction with the new revision; memory and
// watchers follow only if it committed.
func (r *Registry) write(ctx context.Context, what, name, id string,
	change func(old []*registry.Instance, i int, found bool) ([]*registry.Instance, []byte, bool)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: %s: %w", what, err)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.closed {
		return fmt.Errorf("file: %s: %w", what, registry.ErrClosed)
	}
	old := r.services[name]
	i, found := slices.BinarySearchFunc(old, id, func(in *registry.Instance, id string) int { return strings.Compare(in.ID, id) })
	next, val, changed := change(old, i, found)
	if !changed {
		return nil
	}
	if r.d.readOnly {
		return fmt.Errorf("file: %s: %w: %w", what, registry.ErrInvalid, ErrReadOnly)
	}
	rev := r.rev + 1
	err := r.d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketInstances))
		meta := tx.Bucket([]byte(bucketMeta))
		if b == nil || meta == nil {
			return fmt.Errorf("%w: %w: bucket missing", ErrCorrupt, registry.ErrInvalid)
		}
		key := recordKey(name, id)
		var err error
		if val == nil {
			err = b.Delete(key)
		} else {
			err = b.Put(key, val)
		}
		if err != nil {
			return err
		}
		return meta.Put([]byte(keyRevision), binary.BigEndian.AppendUint64(nil, uint64(rev)))
	})
	if err != nil {
		return writeErr(what, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rev = rev
	if len(next) == 0 {
		delete(r.services, name)
	} else {
		r.services[name] = next
	}
	r.publishLocked(name)
	return nil
}

// GetService implements registry.Registry. It reads memory only.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("file: get: %w", err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, fmt.Errorf("file: get %s: %w", registry.Quote(name), registry.ErrClosed)
	}
	ins := r.services[name]
	if len(ins) == 0 {
		return nil, fmt.Errorf("file: get %s: %w", registry.Quote(name), registry.ErrNotFound)
	}
	return registry.CloneInstances(ins), nil
}

// ListServices implements registry.Registry.
func (r *Registry) ListServices(ctx context.Context) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, fmt.Errorf("file: list: %w", registry.ErrClosed)
	}
	names := make([]string, 0, len(r.services))
	for name := range r.services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Watch implements registry.Registry. Watchers are fed in-process, in the
// order of the changes; Update.Revision is the file's revision counter.
func (r *Registry) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if name != "" {
		if err := registry.ValidateName(name); err != nil {
			return nil, fmt.Errorf("file: watch: %w", err)
		}
	}
	// The write lock makes subscribing and the first state atomic with
	// respect to changes, which publish under it too.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("file: watch %s: %w", registry.Quote(name), registry.ErrClosed)
	}
	f := registry.NewFeed(ctx, nil) // the hub forgets it when it ends
	if name != "" {
		r.hub.Add(f, name, r.updateLocked(name))
		return f, nil
	}
	var first []*registry.Update
	for _, n := range slices.Sorted(maps.Keys(r.services)) {
		first = append(first, r.updateLocked(n))
	}
	r.hub.Add(f, "", first...)
	return f, nil
}

// Ping implements registry.Pinger: nil while the file is usable.
func (r *Registry) Ping(ctx context.Context) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return fmt.Errorf("file: ping: %w", registry.ErrClosed)
	}
	if err := r.d.brokenErr(); err != nil {
		return fmt.Errorf("file: ping: %w: %w", registry.ErrUnavailable, err)
	}
	return nil
}

// Close implements registry.Registry: it ends every watcher with
// registry.ErrClosed and closes the file, releasing its lock. The
// registrations stay in the file. Close is idempotent.
func (r *Registry) Close() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.hub.EndAll(fmt.Errorf("file: %w", registry.ErrClosed))
	return r.d.close()
}

func (r *Registry) updateLocked(name string) *registry.Update {
	return &registry.Update{
		Service:   name,
		Instances: registry.CloneInstances(r.services[name]),
		Source:    Source,
		Revision:  r.rev,
		Time:      time.Now(),
	}
}

// publishLocked runs under r.mu so that watchers see states in order;
// Feed.Publish never blocks. The Hub gives each feed its own copy, so the
// stored instances (never modified in place) are passed as they are.
func (r *Registry) publishLocked(name string) {
	r.hub.Publish(&registry.Update{Service: name, Instances: r.services[name], Source: Source, Revision: r.rev, Time: time.Now()})
}
