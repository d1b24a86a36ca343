package zk_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/registry"
)

// Register an instance, read it back and watch its service. Needs a
// ZooKeeper server on 127.0.0.1:2181.
func Example() {
	r, err := zk.New(zk.Config{
		Servers:        []string{"127.0.0.1:2181"},
		SessionTimeout: 5 * time.Second, // how long the node outlives a crash
		// Username/Password: "svc"/"secret" would make the nodes read-only to others.
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := &registry.Instance{
		ID:        "helloworld-1",
		Name:      "helloworld",
		Version:   "v1.0.0",
		Endpoints: []string{"grpc://10.0.0.1:9000?isSecure=false"},
	}
	// The node /microservices/helloworld/helloworld-1 lives with the session
	// and is put back by the Registry whenever it is lost.
	if err := r.Register(ctx, in); err != nil {
		log.Printf("register: %v (retried in the background)", err)
	}

	instances, err := r.GetService(ctx, "helloworld")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(instances), instances[0].Endpoints[0])

	w, err := r.Watch(ctx, "helloworld")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	u, err := w.Next() // the current state at once
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Service, len(u.Instances), u.Source)

	for _, s := range r.Registrations() {
		fmt.Println(s.Instance, "live:", s.Live)
	}
}
