package chain_test

import (
	"testing"

	"go.uber.org/goleak"
)

// testMain stops the shared etcd after the tests and before goleak looks
// for leftover goroutines.
type testMain struct{ m *testing.M }

func (tm testMain) Run() int {
	code := tm.m.Run()
	stopShared()
	return code
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(testMain{m}) }
