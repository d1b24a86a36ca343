package registrytest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemory(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry { return registrytest.NewMemory() })
}
