package etcdinterop

import (
	"testing"

	"github.com/regchain/regchain/embedetcd/etcdtest"
)

// shared is one embedded etcd for the package's tests; each test uses its
// own namespace.
var shared etcdtest.Shared

func TestMain(m *testing.M) { etcdtest.VerifyMain(m, &shared) }
