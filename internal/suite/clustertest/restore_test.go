package clustertest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/embedetcd"
)

// TestRestoreOlderSnapshot: the whole cluster is restored from a snapshot
// older than the client's last writes. The client's registrations must be
// back as they are now (not as in the snapshot) and its watcher must show
// that state, not stay frozen at a revision the cluster no longer reaches.
// Both with the revision bumped and compacted (etcdutl's recommended
// restore) and without, revisions going backwards.
func TestRestoreOlderSnapshot(t *testing.T) {
	t.Run("bumped", func(t *testing.T) { testRestore(t, embedetcd.RestoreOptions{RevisionBump: 1000}) })
	t.Run("backwards", func(t *testing.T) { testRestore(t, embedetcd.RestoreOptions{}) })
}

func testRestore(t *testing.T, opts embedetcd.RestoreOptions) {
	c := startCluster(t)
	reg := newRegistry(t, c.Endpoints(), "/rs")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, id := range ids(5, "s") {
		if err := reg.Register(ctx, instance("held", id)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := reg.Watch(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := follow(w)
	waitFor(t, "watcher sees the 5", func() string { return seen.has(ids(5, "s")...) })
	snap := filepath.Join(t.TempDir(), "backup.db")
	snapRev, err := c.Snapshot(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	// After the backup: s05..s07 registered, s00 deregistered.
	for _, id := range []string{"s05", "s06", "s07"} {
		if err := reg.Register(ctx, instance("held", id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.Deregister(ctx, instance("held", "s00")); err != nil {
		t.Fatal(err)
	}
	want := []string{"s01", "s02", "s03", "s04", "s05", "s06", "s07"}
	waitFor(t, "watcher sees the current set", func() string { return seen.has(want...) })
	obs := rawClient(t, c.Endpoints())
	r, err := obs.Get(ctx, "/rs/held/", clientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	lastRev := r.Header.Revision

	restored := time.Now()
	if err := c.Restore(snap, opts); err != nil {
		t.Fatal(err)
	}
	restartTook := time.Since(restored)
	// Registrations: the cluster holds the client's current set again (the
	// snapshot's s00 expires with its lease, s05..s07 are put back).
	onCluster := waitFor(t, "cluster holds the current registrations", func() string {
		r, err := obs.Get(ctx, "/rs/held/", clientOpts()[:1]...)
		if err != nil {
			return err.Error()
		}
		var got []string
		for _, kv := range r.Kvs {
			got = append(got, filepath.Base(string(kv.Key)))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Sprintf("cluster has %v at revision %d", got, r.Header.Revision)
		}
		return ""
	})
	// The watcher shows that state (s00 gone with its lease), then a change
	// made after the restore.
	settled := waitFor(t, "watcher shows the restored-and-repaired state", func() string { return seen.has(want...) })
	if err := reg.Register(ctx, instance("held", "s08")); err != nil {
		t.Fatal(err)
	}
	watched := waitFor(t, "watcher sees s08 after the restore", func() string { return seen.has(append(want, "s08")...) })
	t.Logf("restore from snapshot at revision %d (client had seen %d, bump %d): cluster restarted in %v; registrations current %v later; watcher current %v after that; a new change watched in %v",
		snapRev, lastRev, opts.RevisionBump, restartTook.Round(time.Millisecond), onCluster.Round(time.Millisecond), settled.Round(time.Millisecond), watched.Round(time.Millisecond))
}
