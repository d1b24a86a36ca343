package embedetcd

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// Snapshot saves a snapshot of the cluster's data (etcd's Maintenance
// API, through any running member) to path, and returns the revision it
// holds.
func (c *Cluster) Snapshot(ctx context.Context, path string) (int64, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	st, err := cli.Status(ctx, c.Endpoints()[0])
	if err != nil {
		return 0, fmt.Errorf("embedetcd: snapshot: %w", err)
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("embedetcd: snapshot: %w", err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return 0, fmt.Errorf("embedetcd: snapshot: %w", err)
	}
	return st.Header.Revision, f.Close()
}

// RestoreOptions are the options of etcdutl's snapshot restore that matter
// to clients.
type RestoreOptions struct {
	// RevisionBump, when not zero, raises the restored revision by this
	// much and marks it compacted (etcdutl --bump-revision
	// --mark-compacted): watchers then see their revision compacted and
	// re-list instead of waiting for a revision that went backwards. When
	// zero, revisions go back to the snapshot's.
	RevisionBump uint64
}

// Restore stops every member, replaces each one's data with the snapshot
// at path (etcdutl snapshot restore, as an operator restoring a backup
// does: a new cluster ID, the same member names and addresses) and starts
// the cluster again.
func (c *Cluster) Restore(path string, opts RestoreOptions) error {
	var wg = make(chan struct{}, len(c.members))
	for _, m := range c.members {
		go func() { m.Stop(); wg <- struct{}{} }()
	}
	for range c.members {
		<-wg
	}
	c.token = fmt.Sprintf("regchain-restored-%d", time.Now().UnixNano())
	for _, m := range c.members {
		if err := os.RemoveAll(m.dir); err != nil {
			return err
		}
		err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
			SnapshotPath:        path,
			Name:                m.name,
			OutputDataDir:       m.dir,
			PeerURLs:            []string{m.advPeer.String()},
			InitialCluster:      c.initialCluster(),
			InitialClusterToken: c.token,
			RevisionBump:        opts.RevisionBump,
			MarkCompacted:       opts.RevisionBump > 0,
		})
		if err != nil {
			return fmt.Errorf("embedetcd: restore %s: %w", m.name, err)
		}
		m.mu.Lock()
		m.joined = false
		m.mu.Unlock()
	}
	errc := make(chan error, len(c.members))
	for _, m := range c.members {
		go func() { errc <- m.Start() }()
	}
	var first error
	for range c.members {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}
