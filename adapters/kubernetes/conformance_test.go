package kubernetes

import (
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/regchain/regchain/adapters/kubernetes/kubetest"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestConformance(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newRegistryNoCleanup(t, testConfig(t, srv, newNamespace(t, admin)))
	})
}

// A user whose Role lets it read EndpointSlices but not write them: RBAC
// refuses Register (403), which wraps ErrInvalid and is not retried.
func TestConformanceReadOnly(t *testing.T) {
	srv := shared.get(t)
	admin := srv.Client(t, kubetest.UserAdmin)
	registrytest.RunReadOnly(t, func(t *testing.T) registry.Registry {
		ns := newNamespace(t, admin)
		grant(t, admin, ns, kubetest.UserReader, "discovery.k8s.io", []string{"endpointslices"}, []string{"get", "list", "watch"})
		cfg := testConfig(t, srv, ns)
		cfg.REST = srv.Config(kubetest.UserReader)
		return newRegistryNoCleanup(t, cfg)
	})
}

// The history cases: the API server's etcd wiped, or restored from a
// backup, under a running registry (the API server stopped meanwhile, as a
// real restore requires). Registrations live in "default", which the API
// server recreates after a wipe.
func TestHistory(t *testing.T) {
	srv := kubetest.Start(t, kubetest.Options{})
	admin := srv.Client(t, kubetest.UserAdmin)
	registrytest.RunHistory(t, registrytest.HistoryHarness{
		New: func(t *testing.T) registry.Registry {
			return newRegistryNoCleanup(t, testConfig(t, srv, metav1.NamespaceDefault))
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
			err := admin.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Delete(ctxT(t, registrytest.Timeout), sliceName(name, id), metav1.DeleteOptions{})
			if err != nil {
				t.Fatalf("delete %s/%s: %v", name, id, err)
			}
		},
		// An API server restart takes seconds on a loaded machine; the
		// informers then relist.
		Recover: 90 * time.Second,
	})
}

// newRegistryNoCleanup returns a registry the kit closes.
func newRegistryNoCleanup(t *testing.T, cfg Config) registry.Registry {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}
