package etcd

import (
	"testing"

	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestConformance(t *testing.T) {
	srv := shared.Server(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, err := New(testConfig(t, srv.Endpoint()))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return r
	})
}
