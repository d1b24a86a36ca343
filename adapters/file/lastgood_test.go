package file

import (
	"encoding/binary"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/regchain/regchain/registry"
)

// TestLastGood: an empty state saved over a non-empty one keeps the
// non-empty one as the service's last known good state, in the same
// transaction; a non-empty state replaces it; SaveSnapshotEntries stores
// the one it is given.
func TestLastGood(t *testing.T) {
	path := tempPath(t, "snap.db")
	s := mustOpenStore(t, path, quiet())
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	full := &registry.Update{Service: "svc", Source: "etcd", Time: at,
		Instances: []*registry.Instance{inst("svc", "a1", 1), inst("svc", "a2", 2)}}
	empty := &registry.Update{Service: "svc", Source: "etcd", Time: at.Add(time.Minute), Instances: []*registry.Instance{}}
	load := func(when string) registry.SnapshotEntry {
		t.Helper()
		es, err := s.LoadSnapshot(ctxT(t))
		if err != nil || len(es) != 1 {
			t.Fatalf("%s: LoadSnapshot = %v, %v", when, es, err)
		}
		return es[0]
	}
	if err := s.SaveSnapshot(ctxT(t), []*registry.Update{full}); err != nil {
		t.Fatal(err)
	}
	if e := load("full"); e.LastGood != nil {
		t.Errorf("full: LastGood = %v, want nil (the state is its own)", e.LastGood)
	}
	if err := s.SaveSnapshot(ctxT(t), []*registry.Update{empty}); err != nil {
		t.Fatal(err)
	}
	e := load("empty")
	if len(e.Update.Instances) != 0 || e.LastGood == nil || !registry.EqualInstances(e.LastGood.Instances, full.Instances) || !e.LastGood.Time.Equal(at) {
		t.Fatalf("empty: got %v / last good %v, want empty / the full state", e.Update, e.LastGood)
	}
	// A second empty save keeps it.
	if err := s.SaveSnapshot(ctxT(t), []*registry.Update{empty}); err != nil {
		t.Fatal(err)
	}
	if e := load("empty again"); e.LastGood == nil {
		t.Fatal("a second empty save lost the last good state")
	}
	// Explicit entries.
	other := &registry.Update{Service: "svc", Source: "consul", Time: at, Instances: []*registry.Instance{inst("svc", "b1", 3)}}
	if err := s.SaveSnapshotEntries(ctxT(t), []registry.SnapshotEntry{{Update: empty, LastGood: other}}); err != nil {
		t.Fatal(err)
	}
	if e := load("entries"); e.LastGood == nil || e.LastGood.Source != "consul" || e.LastGood.Instances[0].ID != "b1" {
		t.Fatalf("entries: last good %v, want consul's b1", e.LastGood)
	}
	if err := s.SaveSnapshotEntries(ctxT(t), []registry.SnapshotEntry{{Update: full}}); err != nil {
		t.Fatal(err)
	}
	if e := load("full again"); e.LastGood != nil {
		t.Errorf("full again: LastGood = %v, want nil", e.LastGood)
	}
	bad := &registry.Update{Service: "other", Instances: []*registry.Instance{inst("other", "x", 1)}}
	if err := s.SaveSnapshotEntries(ctxT(t), []registry.SnapshotEntry{{Update: empty, LastGood: bad}}); err == nil {
		t.Error("a last good state of another service was accepted")
	}
	s.Close()
}

// TestMigrateSchema1: a snapshot file written by schema 1 (no lastgood
// bucket) opens read-only as it is, and a writable open migrates it in
// place, keeping its entries.
func TestMigrateSchema1(t *testing.T) {
	path := tempPath(t, "snap.db")
	s := mustOpenStore(t, path, quiet())
	full := &registry.Update{Service: "svc", Source: "etcd", Time: time.Now(), Instances: []*registry.Instance{inst("svc", "a1", 1)}}
	if err := s.SaveSnapshot(ctxT(t), []*registry.Update{full}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Turn it into what schema 1 wrote.
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(bucketLastGood)); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchema), binary.BigEndian.AppendUint64(nil, 1))
	})
	ro := mustOpenStore(t, path, Config{ReadOnly: true, Logger: quiet().Logger})
	if es, err := ro.LoadSnapshot(ctxT(t)); err != nil || len(es) != 1 || es[0].LastGood != nil {
		t.Fatalf("read-only schema 1: %v, %v", es, err)
	}
	ro.Close()
	s = mustOpenStore(t, path, quiet())
	defer s.Close()
	if es, err := s.LoadSnapshot(ctxT(t)); err != nil || len(es) != 1 || !registry.EqualInstances(es[0].Update.Instances, full.Instances) {
		t.Fatalf("migrated: %v, %v", es, err)
	}
	empty := &registry.Update{Service: "svc", Source: "etcd", Time: time.Now(), Instances: []*registry.Instance{}}
	if err := s.SaveSnapshot(ctxT(t), []*registry.Update{empty}); err != nil {
		t.Fatalf("save after migration: %v", err)
	}
	var ver uint64
	if err := s.d.view(func(tx *bolt.Tx) error {
		ver = binary.BigEndian.Uint64(tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchema)))
		return nil
	}); err != nil || ver != schemaVersion {
		t.Errorf("schema after migration = %d, %v; want %d", ver, err, schemaVersion)
	}
	if es, _ := s.LoadSnapshot(ctxT(t)); len(es) != 1 || es[0].LastGood == nil {
		t.Errorf("after an empty save the migrated file keeps no last good state: %v", es)
	}
}
