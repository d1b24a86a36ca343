package embedetcd

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestWipeAndRestore(t *testing.T) {
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	get := func(key string) (string, int64) {
		t.Helper()
		resp, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		if len(resp.Kvs) == 0 {
			return "", resp.Header.Revision
		}
		return string(resp.Kvs[0].Value), resp.Header.Revision
	}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}} {
		if _, err := cli.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	if err := s.Snapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	_, snapRev := get("a")
	for i := 0; i < 5; i++ {
		if _, err := cli.Put(ctx, "c", "later"); err != nil {
			t.Fatal(err)
		}
	}
	_, seen := get("c")

	if err := s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if v, rev := get("a"); v != "1" || rev != snapRev {
		t.Errorf("after Restore: a = %q at revision %d, want 1 at %d (seen before: %d)", v, rev, snapRev, seen)
	}
	if v, _ := get("c"); v != "" {
		t.Errorf("after Restore: c = %q, want absent (written after the snapshot)", v)
	}
	if v, _ := get("leased"); v != "x" {
		t.Errorf("after Restore: leased = %q, want x", v)
	}
	if ttl, err := cli.TimeToLive(ctx, lease.ID); err != nil || ttl.TTL <= 0 {
		t.Errorf("after Restore: lease TTL = %v, %v; want the lease alive", ttl, err)
	}

	if err := s.Wipe(); err != nil {
		t.Fatal(err)
	}
	if v, rev := get("a"); v != "" || rev != 1 {
		t.Errorf("after Wipe: a = %q at revision %d, want absent at 1", v, rev)
	}
}
