package consultest_test

import (
	"testing"

	"github.com/regchain/regchain/internal/testsupport/consultest"
)

// A test starts an agent, talks to it, and kills and restarts it to inject a
// fault. The agent is stopped when the test ends.
func ExampleStart() {
	_ = func(t *testing.T) {
		a := consultest.Start(t, consultest.Options{ACL: true})
		c := a.Client(t) // authenticated with a.Token
		if _, err := c.Status().Leader(); err != nil {
			t.Fatal(err)
		}
		a.Restart(t) // same address, empty state
	}
}
