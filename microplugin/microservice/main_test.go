package microservice_test

import (
	"os"
	"testing"

	"github.com/regchain/regchain/embedetcd/etcdtest"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

var shared etcdtest.Shared

// go-micro's root, client and server packages start goroutines when
// imported: those are ignored, anything the tests start is not.
func TestMain(m *testing.M) { os.Exit(testutil.MainIgnoringImports(m, shared.Stop)) }
