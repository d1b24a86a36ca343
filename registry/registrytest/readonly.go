package registrytest

import (
	"errors"
	"testing"

	"github.com/regchain/regchain/registry"
)

// RunReadOnly holds a registry that cannot write (a file opened read-only,
// the static tier, a server whose credentials only allow reading) to the
// rule for writes that can never succeed: Register is refused with an
// error matching registry.ErrInvalid and not registry.ErrUnavailable (the
// chain replays writes refused as unavailable, forever), nothing is
// written, and nothing is kept to be retried: when the registry is a
// registry.RegistrationReporter the refused registration is not reported.
// A Deregister of a record it does not hold returns nil or such an error.
// Reads still work: GetService answers ErrNotFound for the refused
// instance's service.
//
// newReadOnly is called once; the kit closes what it returns.
func RunReadOnly(t *testing.T, newReadOnly func(t *testing.T) registry.Registry) {
	t.Helper()
	t.Run("ReadOnlyRefusal", func(t *testing.T) {
		r := newReadOnly(t)
		t.Cleanup(func() { r.Close() })
		k := &kit{r: r, prefix: "ro-" + randomToken()}
		svc := k.service("refused")
		in := k.instance(svc, "r1", 9990)
		err := r.Register(ctxT(t), in)
		switch {
		case err == nil:
			t.Fatalf("Register on a read-only registry = nil, want an error matching ErrInvalid")
		case !errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnavailable):
			t.Errorf("Register on a read-only registry = %v, want ErrInvalid and not ErrUnavailable (a write that can never succeed must not be replayed)", err)
		}
		if rr, ok := r.(registry.RegistrationReporter); ok {
			for _, st := range rr.Registrations() {
				if st.Instance != nil && st.Instance.Key() == in.Key() {
					t.Errorf("the refused registration is kept (Live %v, last error %v): it would be retried", st.Live, st.LastError)
				}
			}
		}
		if got, err := r.GetService(ctxT(t), svc); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("GetService after the refused Register = %s, %v; want ErrNotFound (nothing written)", describe(got), err)
		}
		if err := r.Deregister(ctxT(t), in); err != nil && (!errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnavailable)) {
			t.Errorf("Deregister on a read-only registry = %v, want nil or ErrInvalid", err)
		}
	})
}
