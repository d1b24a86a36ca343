package testutil_test

import (
	"context"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// TestReaderUntil: Until answers from a state the test took from C itself,
// and a state still waiting in C is taken by Until, not left there for the
// test's next read of C.
func TestReaderUntil(t *testing.T) {
	m := registrytest.NewMemory()
	defer m.Close()
	in := &registry.Instance{ID: "1", Name: "svc", Endpoints: []string{"grpc://10.0.0.1:1"}}
	rd := testutil.WatchReader(t, m, "svc", "")
	select {
	case res := <-rd.C: // the first, empty state, taken by the test
		if res.Err != nil || len(res.U.Instances) != 0 {
			t.Fatalf("first state: %+v, %v", res.U, res.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no first state")
	}
	rd.Until(t, 10*time.Second, "svc") // known: taken from C by the test
	if err := m.Register(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	rd.Until(t, 10*time.Second, "svc", in)
	rd.Until(t, 10*time.Second, "svc", in) // again: answered from the latest state
	select {
	case res := <-rd.C:
		t.Fatalf("C still holds %+v, %v after Until took it", res.U, res.Err)
	default:
	}
}
