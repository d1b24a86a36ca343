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

// The instances together with where they come from and how old they are,
// from one state. A service registered only in etcd (a Kratos app, say)
// stays served, marked stale, while etcd is down — even though Consul,
// up, never held it: Consul is no authority for it.
func ExampleChain_GetServiceWithInfo() {
	etcd := registrytest.NewMemoryNamed("etcd")
	consul := registrytest.NewMemoryNamed("consul")
	ctx := context.Background()
	// Registered by someone else, in etcd only.
	etcd.Register(ctx, &registry.Instance{ID: "k1", Name: "kratos.app", Endpoints: []string{"grpc://10.0.0.1:9000"}})
	c, err := chain.New([]chain.Tier{
		{Name: "etcd", Registry: etcd},
		{Name: "consul", Registry: consul},
	}, chain.WithFailureThreshold(1), chain.WithProbeInterval(10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	a, err := c.GetServiceWithInfo(ctx, "kratos.app")
	fmt.Println(len(a.Instances), a.Source, a.Stale, err)

	etcd.SetAvailable(false) // etcd goes down
	for c.Status().Tiers[0].Up {
		time.Sleep(10 * time.Millisecond)
	}
	// readme:begin provenance
	a, err = c.GetServiceWithInfo(ctx, "kratos.app") // instances, source and age from one state
	fmt.Println(len(a.Instances), a.Source, a.Stale, err)
	// readme:end provenance
	// Output:
	// 1 etcd false <nil>
	// 1 snapshot true <nil>
}

// An operator's switches during an incident: a held drop is let through
// at once, a service rolled back to its last known good state.
func ExampleChain_Rollback() {
	m := registrytest.NewMemoryNamed("m")
	ctx := context.Background()
	in := &registry.Instance{ID: "a1", Name: "svc", Endpoints: []string{"grpc://10.0.0.1:9000"}}
	m.Register(ctx, in)
	c, err := chain.New([]chain.Tier{{Name: "m", Registry: m}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GetService(ctx, "svc"); err != nil {
		log.Fatal(err)
	}
	m.Deregister(ctx, in) // someone deletes the service's keys
	for !c.Status().Services[0].Held {
		time.Sleep(10 * time.Millisecond)
	}
	got, _ := c.GetService(ctx, "svc") // the drop is held
	fmt.Println("held:", len(got))

	c.ReleaseHold("svc") // the operator: the removal is real
	_, err = c.GetService(ctx, "svc")
	fmt.Println("released:", err != nil)

	c.Rollback("svc") // the operator: it was not
	got, _ = c.GetService(ctx, "svc")
	fmt.Println("rolled back:", len(got), c.Status().Services[0].RolledBack)
	// Output:
	// held: 1
	// released: true
	// rolled back: 1 true
}
