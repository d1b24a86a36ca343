package locality_test

import (
	"context"
	"fmt"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// A reader in zone eu-1a prefers its zone, then its region, then anything.
func ExampleWrap() {
	ctx := context.Background()
	mem := registrytest.NewMemory()
	// readme:begin locality
	reg := locality.Wrap(mem, locality.Config{
		Self: locality.Locality{Zone: "eu-1a", Region: "eu-1"},
		// Leave a level below 2 instances, come back at 3.
		Thresholds: locality.Thresholds{MinCount: 2, RecoverCount: 3},
	})
	// readme:end locality
	defer reg.Close()

	add := func(id, zone, region string) {
		mem.Register(ctx, &registry.Instance{
			ID: id, Name: "orders", Endpoints: []string{"grpc://127.0.0.1:9000"},
			Metadata: map[string]string{locality.KeyZone: zone, locality.KeyRegion: region},
		})
	}
	show := func(what string) {
		ins, _ := reg.GetService(ctx, "orders")
		fmt.Print(what, ":")
		for _, in := range ins {
			fmt.Print(" ", in.ID)
		}
		fmt.Println()
	}
	add("a1", "eu-1a", "eu-1")
	add("a2", "eu-1a", "eu-1")
	add("b1", "eu-1b", "eu-1")
	add("u1", "us-1a", "us-1")
	show("zone")
	mem.Deregister(ctx, &registry.Instance{Name: "orders", ID: "a2"})
	show("zone lost")
	add("a2", "eu-1a", "eu-1")
	show("zone at 2")
	add("a3", "eu-1a", "eu-1")
	show("zone at 3")
	// Output:
	// zone: a1 a2
	// zone lost: a1 b1
	// zone at 2: a1 a2 b1
	// zone at 3: a1 a2 a3
}

// Select is the selector as a pure function.
func ExampleSelect() {
	self := locality.Locality{Zone: "a", Region: "r1"}
	ins := []*registry.Instance{
		{ID: "b1", Metadata: map[string]string{"zone": "b", "region": "r1"}},
		{ID: "c1", Metadata: map[string]string{"zone": "c", "region": "r2"}},
	}
	lvl, sel := locality.Select(self, locality.Thresholds{}, locality.LevelZone, ins)
	fmt.Println(lvl, len(sel), sel[0].ID)
	// Output: region 1 b1
}
