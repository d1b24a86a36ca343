package consul

import (
	"testing"
	"time"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// A dev agent wiped under the registries (killed and started empty on the
// same ports): every registration is registered again and defended, the
// watchers relist. Consul's -dev mode has nothing to restore from, so the
// harness has no Backup and the kit skips its Restore case.
func TestHistory(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	raw := a.Client(t)
	registrytest.RunHistory(t, registrytest.HistoryHarness{
		New: func(t *testing.T) registry.Registry {
			r, err := New(testConfig(t, a.Addr))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return r
		},
		Wipe: func(t *testing.T) { a.Wipe(t) },
		Delete: func(t *testing.T, name, id string) {
			// Under its own ID, or name:id when that ID was taken.
			for _, sid := range []string{id, qualifiedID(name, id)} {
				svc, _, err := raw.Agent().Service(sid, nil)
				if err == nil && svc != nil && svc.Service == name {
					if err := raw.Agent().ServiceDeregister(sid); err != nil {
						t.Fatalf("deregister %s: %v", sid, err)
					}
				}
			}
		},
		Recover: 20 * time.Second,
	})
}
