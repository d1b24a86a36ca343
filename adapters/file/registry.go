package file

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
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
