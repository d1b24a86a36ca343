package consul

import (
	"errors"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/registry"
)

// RegisterTTL gives the record's check its own TTL: once the registry is
// closed (heartbeats stop), the record registered with 1s turns critical
// while the one on Config.TTL (30s) still passes.
func TestRegisterTTLCheck(t *testing.T) {
	a := consultest.Start(t, consultest.Options{})
	cfg := testConfig(t, a.Addr)
	cfg.TTL = 30 * time.Second
	r := newRegistry(t, cfg)
	short, long := instance("ttl", "short", 8500), instance("ttl", "long", 8510)
	if err := r.RegisterTTL(ctxT(t, 10*time.Second), short, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctxT(t, 10*time.Second), long); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterTTL(ctxT(t, 10*time.Second), instance("ttl", "bad", 8520), time.Second/2); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("RegisterTTL below MinTTL = %v, want ErrInvalid", err)
	}
	r.Close()
	raw := a.Client(t)
	waitFor(t, "the 1s record critical, the other passing", 20*time.Second, func() string {
		cs, _, err := raw.Health().Checks("ttl", nil)
		if err != nil {
			return err.Error()
		}
		status := map[string]string{}
		for _, c := range cs {
			status[c.ServiceID] = c.Status
		}
		if status["short"] != consulapi.HealthCritical || status["long"] != consulapi.HealthPassing {
			return "statuses " + status["short"] + " " + status["long"]
		}
		return ""
	})
}
