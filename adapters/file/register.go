package file

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/registry"
)

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
