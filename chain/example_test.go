package chain_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// A chain of two registries: reads come from the first one that is up, and
// watchers follow when it goes down. Memory tiers stand in for etcd, Consul
// or ZooKeeper registries here.
func Example() {
	primary := registrytest.NewMemoryNamed("primary")
	backup := registrytest.NewMemoryNamed("backup")
	c, err := chain.New([]chain.Tier{
		{Name: "primary", Registry: primary},
		{Name: "backup", Registry: backup},
	}, chain.WithFailureThreshold(1))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	// Written to both tiers.
	err = c.Register(ctx, &registry.Instance{
		ID: "hello-1", Name: "hello", Version: "v1",
		Endpoints: []string{"grpc://10.0.0.1:9000"},
	})
	if err != nil {
		log.Fatal(err)
	}
	w, err := c.Watch(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	next := func(source string) {
		for {
			u, err := w.Next()
			if err != nil {
				log.Fatal(err)
			}
			if u.Source == source {
				fmt.Println(u.Source, len(u.Instances), u.Instances[0].ID)
				return
			}
		}
	}
	next("primary")
	primary.SetAvailable(false) // the primary goes down
	next("backup")
	instances, err := c.GetService(ctx, "hello") // from memory, no I/O
	fmt.Println(len(instances), err)
	// Output:
	// primary 1 hello-1
	// backup 1 hello-1
	// 1 <nil>
}

// Status for a readiness probe.
func ExampleChain_Status() {
	c, err := chain.New([]chain.Tier{{Name: "only", Registry: registrytest.NewMemory()}},
		chain.WithProbeInterval(500*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	st := c.Status()
	fmt.Println("ready:", st.Ready)
	for _, t := range st.Tiers {
		fmt.Println(t.Name, "up:", t.Up)
	}
	// Output:
	// ready: true
	// only up: true
}
