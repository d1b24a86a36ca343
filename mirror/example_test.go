package mirror_test

import (
	"context"
	"fmt"
	"time"

	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// Two datacenters' registries mirrored both ways: each holds its own
// instances plus the other's, marked with their origin.
func Example() {
	dcA, dcB := registrytest.NewMemory(), registrytest.NewMemory()
	ctx := context.Background()
	var mirrors []*mirror.Mirror
	for _, m := range []mirror.Config{
		{Source: dcA, Target: dcB, Origin: "dc-a"},
		{Source: dcB, Target: dcA, Origin: "dc-b"},
	} {
		mm, err := mirror.New(m)
		if err != nil {
			panic(err)
		}
		mirrors = append(mirrors, mm)
		go mm.Run(ctx)
	}
	dcA.Register(ctx, &registry.Instance{ID: "a1", Name: "orders", Endpoints: []string{"grpc://10.0.1.1:9000"}})
	dcB.Register(ctx, &registry.Instance{ID: "b1", Name: "orders", Endpoints: []string{"grpc://10.0.2.1:9000"}})

	for {
		ins, _ := dcA.GetService(ctx, "orders")
		if len(ins) == 2 {
			for _, in := range ins {
				fmt.Printf("%s origin=%q\n", in.ID, mirror.Origin(in))
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Withdraw removes a mirror's records now (a mirror removed for good);
	// Close leaves them to expire with their TTL (a restart, a hand-over).
	mirrors[0].Withdraw(ctx)
	mirrors[1].Close()
	// Output:
	// a1 origin=""
	// b1 origin="dc-b"
}
