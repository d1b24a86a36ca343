package file

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/registry"
)

// Store is a registry.SnapshotStore kept in a bbolt file: per service, the
// last Update saved (instances, source, revision, time) and when it was
// saved, and beside it, when that Update is empty, the service's last
// known good (non-empty) state (registry.LastGoodSaver). The chain uses it as its last resort. Use a file of its own: a
// Registry and a Store cannot hold the same file open at once.
//
// Store is safe for concurrent use.
type Store struct {
	d *db

	mu     sync.RWMutex // guards closed; read-held across every transaction, so Close waits for them
	closed bool
}

var (
	_ registry.SnapshotStore = (*Store)(nil)
	_ registry.LastGoodSaver = (*Store)(nil)
)

// OpenStore opens or creates (mode 0600) the snapshot file at path. The
// directory must exist. It fails like Open: ErrLocked, ErrCorrupt,
// ErrSchema.
func OpenStore(path string, cfg Config) (*Store, error) {
	d, err := openDB(path, cfg, bucketSnapshot)
	if err != nil {
		return nil, err
	}
	return &Store{d: d}, nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.d.path }

// SaveSnapshot implements registry.SnapshotStore: it replaces the entries
// of the updates' services in one fsync'ed transaction; other services'
// entries stay. An Update with no instances is stored as such
// (authoritatively empty), and the service's previous non-empty state is
// kept as its last known good state; a non-empty Update is its own. If
// several updates name the same service, the last one wins. An invalid
// update returns registry.ErrInvalid; a failed write (full disk, I/O
// error) returns an error wrapping registry.ErrUnavailable. Either way
// nothing is written and the previous snapshot is intact.
func (s *Store) SaveSnapshot(ctx context.Context, updates []*registry.Update) error {
	entries := make([]registry.SnapshotEntry, len(updates))
	for i, u := range updates {
		entries[i].Update = u
	}
	return s.save(ctx, entries, true)
}

// SaveSnapshotEntries implements registry.LastGoodSaver: SaveSnapshot with
// each service's last known good state given (LastGood nil: the Update is
// its own last good state, or there is none). Both are written in the same
// transaction.
func (s *Store) SaveSnapshotEntries(ctx context.Context, entries []registry.SnapshotEntry) error {
	return s.save(ctx, entries, false)
}

// save writes entries; derive keeps the stored state as the last good one
// when an empty Update replaces it (SaveSnapshot's rule).
func (s *Store) save(ctx context.Context, entries []registry.SnapshotEntry, derive bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: save snapshot: %w", err)
	}
	saved := time.Now()
	type record struct {
		key        string
		start, end int
		// good: [gstart, gend) is the last good state's encoding; gstart
		// < 0: none (delete the stored one), unless keep.
		gstart, gend int
		keep         bool
	}
	records := make([]record, 0, len(entries))
	var buf []byte
	for i, e := range entries {
		u := e.Update
		ins, err := checkUpdate(u)
		if err != nil {
			return fmt.Errorf("file: save snapshot: %w", err)
		}
		start := len(buf)
		buf = appendEntry(buf, saved, u, ins)
		r := record{key: u.Service, start: start, end: len(buf), gstart: -1}
		switch g := e.LastGood; {
		case g != nil && len(ins) == 0:
			gins, err := checkUpdate(g)
			if err == nil && g.Service != u.Service {
				err = fmt.Errorf("%w: last good state of %s is of %s", registry.ErrInvalid, registry.Quote(u.Service), registry.Quote(g.Service))
			}
			if err != nil {
				return fmt.Errorf("file: save snapshot: %w", err)
			}
			r.gstart = len(buf)
			buf = appendEntry(buf, saved, g, gins)
			r.gend = len(buf)
		case len(ins) == 0 && derive:
			r.keep = true
		}
		records = append(records, r)
		if i == 0 {
			// Services tend to be alike: size the buffer after the first.
			buf = slices.Grow(buf, len(buf)*(len(entries)-1)*9/8)
		}
	}
	// Sorted keys make bbolt's inserts sequential; the stable sort keeps
	// the last of several updates of a service last.
	slices.SortStableFunc(records, func(a, b record) int { return cmp.Compare(a.key, b.key) })

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("file: save snapshot: %w", registry.ErrClosed)
	}
	if s.d.readOnly {
		return fmt.Errorf("file: save snapshot: %w: %w", registry.ErrInvalid, ErrReadOnly)
	}
	if len(records) == 0 {
		return nil
	}
	err := s.d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSnapshot))
		lg := tx.Bucket([]byte(bucketLastGood))
		if b == nil || lg == nil {
			return fmt.Errorf("%w: %w: bucket %q or %q missing", ErrCorrupt, registry.ErrInvalid, bucketSnapshot, bucketLastGood)
		}
		// Keys go in sorted, as in an append: pack pages full rather than
		// half full, which halves the pages each save writes and syncs.
		b.FillPercent = 1.0
		for _, r := range records {
			key := []byte(r.key)
			switch {
			case r.gstart >= 0:
				if err := lg.Put(key, buf[r.gstart:r.gend]); err != nil {
					return err
				}
			case r.keep:
				// SaveSnapshot of an empty state: the stored state, if it
				// has instances and no last good state is kept yet, becomes
				// it. Same key, same encoding: its checksum holds.
				if lg.Get(key) == nil {
					if old := b.Get(key); old != nil {
						if e, err := decodeEntry(r.key, old); err == nil && len(e.Update.Instances) > 0 {
							if err := lg.Put(key, slices.Clone(old)); err != nil {
								return err
							}
						}
					}
				}
			default:
				if err := lg.Delete(key); err != nil {
					return err
				}
			}
			// buf is not modified until the transaction ends, as bbolt
			// requires of values.
			if err := b.Put(key, buf[r.start:r.end]); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return writeErr(fmt.Sprintf("save snapshot of %d services to %s", len(records), s.d.path), err)
	}
	return nil
}

// LoadSnapshot implements registry.SnapshotStore: every stored entry,
// sorted by service. An entry that cannot be decoded is skipped and logged:
// the others are still worth having when everything else is down.
func (s *Store) LoadSnapshot(ctx context.Context) ([]registry.SnapshotEntry, error) {
	entries, _, err := s.Load(ctx)
	return entries, err
}

// Load is LoadSnapshot that also names the services whose entries are
// damaged (they fail their checksum or do not decode) and were skipped, for
// tools that check a file (regctl snapshot inspect).
func (s *Store) Load(ctx context.Context) (entries []registry.SnapshotEntry, damaged []string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("file: load snapshot: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, nil, fmt.Errorf("file: load snapshot: %w", registry.ErrClosed)
	}
	err = s.d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSnapshot))
		if b == nil {
			return nil // a new file opened read-only
		}
		lg := tx.Bucket([]byte(bucketLastGood)) // nil in a version 1 file opened read-only
		c := b.Cursor()
		i := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if i++; i%128 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			e, err := decodeEntry(string(k), v)
			if err != nil {
				s.d.log.Warn("file: skipping a snapshot entry that cannot be decoded", "path", s.d.path, "service", registry.Clip(string(k)), "err", err)
				damaged = append(damaged, string(k))
				continue
			}
			if lg != nil {
				if gv := lg.Get(k); gv != nil {
					g, err := decodeEntry(string(k), gv)
					if err != nil {
						s.d.log.Warn("file: skipping a last good state that cannot be decoded", "path", s.d.path, "service", registry.Clip(string(k)), "err", err)
						damaged = append(damaged, string(k)+" (last good)")
					} else {
						e.LastGood = g.Update
					}
				}
			}
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("file: load snapshot from %s: %w", s.d.path, err)
	}
	return entries, damaged, nil
}

// Close closes the file, releasing its lock, after the transactions in
// progress. Later calls return registry.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.d.close()
}
