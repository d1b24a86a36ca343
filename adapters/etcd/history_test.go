package etcd

import (
	"path/filepath"
	"testing"

	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// historyHarness runs the shared fault kit on a server of the test's own.
func historyHarness(t *testing.T) (registrytest.HistoryHarness, *embedetcd.Server) {
	srv := etcdtest.Start(t)
	ns := newNamespace()
	return registrytest.HistoryHarness{
		New: func(t *testing.T) registry.Registry {
			cfg := testConfig(t, srv.Endpoint())
			cfg.Namespace = ns
			r, err := New(cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return r
		},
		Wipe: func(t *testing.T) {
			if err := srv.Wipe(); err != nil {
				t.Fatalf("wipe: %v", err)
			}
		},
		Backup: func(t *testing.T) func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "backup.db")
			if err := srv.Snapshot(ctxT(t, registrytest.Timeout), path); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			return func(t *testing.T) {
				if err := srv.Restore(path); err != nil {
					t.Fatalf("restore: %v", err)
				}
			}
		},
		Delete: func(t *testing.T, name, id string) {
			cli := newClient(t, srv.Endpoint())
			if _, err := cli.Delete(ctxT(t, registrytest.Timeout), ns+"/"+name+"/"+id); err != nil {
				t.Fatalf("delete %s/%s: %v", name, id, err)
			}
		},
	}, srv
}

func TestHistory(t *testing.T) {
	h, _ := historyHarness(t)
	registrytest.RunHistory(t, h)
}
