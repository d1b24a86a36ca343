package chain_test

import (
	"testing"

	"github.com/regchain/regchain/embedetcd/etcdtest"
)

func TestMain(m *testing.M) { etcdtest.VerifyMain(m, &shared) }
