package zk_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// count returns how many recorded messages contain sub.
func (h *recorder) count(sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// Two live Registries holding the same (name, ID) -- a new process started
// while the old one still runs, as in a rolling restart of a StatefulSet
// pod -- each replace the other's node. They must back off instead of
// trading the node thousands of times a second, and once one deregisters the
// other's node must stay.
func TestSameInstanceTwoRegistries(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	h1, h2 := &recorder{}, &recorder{}
	takeoversSoFar := func() int { return h1.count("replacing node") + h2.count("replacing node") }
	r1 := newRegistry(t, nil, zk.Config{Namespace: root, Logger: slogNew(h1)})
	r2 := newRegistry(t, nil, zk.Config{Namespace: root, Logger: slogNew(h2)})
	a1, a2 := instance("twice", "a", 9000), instance("twice", "a", 9010)
	register(t, r1, a1)
	start := time.Now()
	register(t, r2, a2)

	const takeovers = 8
	testutil.WaitFor(t, recoveryTimeout, "both registries take the node over several times", func() string {
		if n := takeoversSoFar(); n < takeovers {
			return fmt.Sprintf("%d takeovers", n)
		}
		return ""
	})
	// Undamped, the two trade the node every few round trips: 8 takeovers in
	// a few milliseconds. Damped (first at once, then from 100ms doubling up
	// to MaxBackoff), 8 need well over 200ms; a slow machine only makes
	// it longer.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("%d takeovers took only %v: the registries fight without backing off", takeovers, d)
	}
	t.Logf("%d takeovers in %v", takeoversSoFar(), time.Since(start))

	if err := r2.Deregister(ctxT(t, 10*time.Second), a2); err != nil {
		t.Fatal(err)
	}
	o := srv.Connect(t, 2*time.Second)
	want, _ := registry.Marshal(a1)
	took := testutil.WaitFor(t, recoveryTimeout, "r1's node back after r2 deregistered", func() string {
		return nodeState(o, nodePath(root, a1), want, nil)
	})
	testutil.WaitFor(t, recoveryTimeout, "r1's registration live", live(r1, 1))
	t.Logf("r1's node restored %v after r2 deregistered", took)
}
