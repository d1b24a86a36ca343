package registrytest

import (
	"errors"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// testRegisterTTL holds a registry.TTLRegistrar to its promise as far as a
// conformance kit can without waiting out TTLs (the adapters' own tests
// check that the TTL reaches the backend): a record registered with a TTL
// is read back like any other, registering it again (with Register or
// another TTL) updates it in place, ttl <= 0 is Register, invalid input is
// ErrInvalid, and Deregister removes it.
func testRegisterTTL(t *testing.T, k *kit) {
	tr, ok := k.r.(registry.TTLRegistrar)
	if !ok {
		t.Skipf("%T is no registry.TTLRegistrar", k.r)
	}
	svc := k.service("ttl")
	t1, t2 := k.instance(svc, "t1", 9980), k.instance(svc, "t2", 9985)
	if err := tr.RegisterTTL(ctxT(t), t1, 20*time.Second); err != nil {
		t.Fatalf("RegisterTTL(%s, 20s): %v", t1, err)
	}
	if err := tr.RegisterTTL(ctxT(t), t2, 0); err != nil {
		t.Fatalf("RegisterTTL(%s, 0): %v", t2, err)
	}
	k.waitInstances(t, svc, t1, t2)

	upd := t1.Clone()
	upd.Version = "v2.0.0"
	if err := tr.RegisterTTL(ctxT(t), upd, 40*time.Second); err != nil {
		t.Fatalf("RegisterTTL again: %v", err)
	}
	k.waitInstances(t, svc, upd, t2)
	upd2 := upd.Clone()
	upd2.Metadata = map[string]string{"weight": "1"}
	k.register(t, upd2)
	k.waitInstances(t, svc, upd2, t2)

	bad := k.instance(svc, "", 9990)
	if err := tr.RegisterTTL(ctxT(t), bad, 20*time.Second); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("RegisterTTL with an empty ID = %v, want ErrInvalid", err)
	}
	k.deregister(t, upd2)
	k.deregister(t, t2)
	k.waitInstances(t, svc)
}
