package zk_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// historyHarness drives a server of the test's own: wiped, or restored from
// a backup, under the registries (whose connections the server then
// refuses: they have seen newer zxids).
func historyHarness(t *testing.T, root string) (*zktest.Server, registrytest.HistoryHarness) {
	srv := zktest.Start(t)
	return srv, registrytest.HistoryHarness{
		New: func(t *testing.T) registry.Registry {
			return newRegistry(t, srv, zk.Config{Namespace: root, SessionTimeout: 4 * time.Second})
		},
		Wipe: func(t *testing.T) {
			if err := srv.Wipe(); err != nil {
				t.Fatal(err)
			}
		},
		Backup: func(t *testing.T) func(t *testing.T) {
			restore, err := srv.Backup()
			if err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				if err := restore(); err != nil {
					t.Fatal(err)
				}
			}
		},
		Delete: func(t *testing.T, name, id string) {
			c := srv.Connect(t, 2*time.Second) // a fresh client: it has seen nothing
			defer c.Close()
			if err := c.Delete(root+"/"+name+"/"+id, -1); err != nil && !errors.Is(err, gozk.ErrNoNode) {
				t.Fatalf("delete %s/%s: %v", name, id, err)
			}
		},
		Recover: 20 * time.Second,
	}
}

// A server wiped or restored from an older backup refuses the Registry's
// session for good ("has seen zxid … our last zxid is …"): the Registry
// replaces its connection and re-creates, re-watches and defends
// everything.
func TestHistory(t *testing.T) {
	_, h := historyHarness(t, uniqueRoot(t))
	registrytest.RunHistory(t, h)
}

// The same faults under a chain over the Registry: the kit's registry under
// test is the chain (its registrations, watchers, Ping and Registrations go
// through the chain's public API); the other registries it uses (another
// client's, and a fresh reader) are plain.
func TestHistoryChain(t *testing.T) {
	root := uniqueRoot(t)
	srv, h := historyHarness(t, root)
	plain := h.New
	calls := 0
	h.New = func(t *testing.T) registry.Registry {
		calls++
		if calls%3 != 1 { // RunHistory asks for the registry under test first, then two more
			return plain(t)
		}
		c, err := chain.New([]chain.Tier{{Name: "zk", Registry: newRegistry(t, srv, zk.Config{Namespace: root, SessionTimeout: 4 * time.Second})}},
			chain.WithLogger(slog.New(slog.DiscardHandler)),
			chain.WithProbeInterval(200*time.Millisecond), chain.WithFailbackAfter(time.Second),
			chain.WithGuard(chain.Guard{Window: time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	registrytest.RunHistory(t, h)
}
