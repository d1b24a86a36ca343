package embedetcd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Wipe stops the server, deletes all its data and starts it again, empty,
// at the same address: a cluster rebuilt from scratch. Its revisions start
// from 1 again; cluster and member IDs are derived from the unchanged
// configuration and stay the same, as they would for a cluster rebuilt with
// the same configuration.
func (s *Server) Wipe() error {
	s.Stop()
	if err := clearDir(s.dir); err != nil {
		return fmt.Errorf("embedetcd: wipe: %w", err)
	}
	return s.Start()
}

// Snapshot saves a snapshot of the running server's data to path (etcd's
// `etcdctl snapshot save`), for Restore.
func (s *Server) Snapshot(ctx context.Context, path string) error {
	s.mu.Lock()
	running := s.e != nil
	s.mu.Unlock()
	if !running {
		return fmt.Errorf("embedetcd: snapshot: server stopped")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg := clientv3.Config{Endpoints: []string{s.clientURL.Host}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if _, err := snapshot.NewV3(zap.NewNop()).Save(ctx, cfg, path); err != nil {
		return fmt.Errorf("embedetcd: snapshot: %w", err)
	}
	return nil
}

// Restore stops the server, replaces its data with the snapshot at path
// (etcd's `etcdutl snapshot restore`) and starts it at the same address:
// the server comes back with the older history the snapshot holds, its
// revision behind what clients have seen, and the leases of the snapshot
// alive again.
func (s *Server) Restore(path string) error {
	s.Stop()
	if err := clearDir(s.dir); err != nil {
		return fmt.Errorf("embedetcd: restore: %w", err)
	}
	// etcdutl refuses an existing output directory.
	out := filepath.Join(s.dir, "restored")
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        path,
		Name:                memberName,
		OutputDataDir:       out,
		PeerURLs:            []string{s.peerURL.String()},
		InitialCluster:      memberName + "=" + s.peerURL.String(),
		InitialClusterToken: embed.NewConfig().InitialClusterToken,
	})
	if err != nil {
		return fmt.Errorf("embedetcd: restore: %w", err)
	}
	if err := os.Rename(filepath.Join(out, "member"), filepath.Join(s.dir, "member")); err != nil {
		return fmt.Errorf("embedetcd: restore: %w", err)
	}
	if err := os.Remove(out); err != nil {
		return fmt.Errorf("embedetcd: restore: %w", err)
	}
	return s.Start()
}

// clearDir removes everything inside dir, keeping dir.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
