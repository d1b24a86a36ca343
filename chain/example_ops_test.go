package chain_test

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry/registrytest"
)

// The degradation level in the terms operators use, with its reasons.
func ExampleChain_Degradation() {
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: registrytest.NewMemoryNamed("etcd")}},
		chain.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	d := c.Degradation()
	fmt.Println(d.Level, d.Level.Meaning(), d.Reasons)
	c.Freeze(true) // what a switch file (WithSwitchFile) does while it exists
	d = c.Degradation()
	fmt.Println(d.Level, d.Level.Meaning(), d.Reasons)
	// Output:
	// L0 all tiers healthy []
	// L1 failed over: a tier is down or serving from the snapshot [frozen: serving the last known good states]
}
