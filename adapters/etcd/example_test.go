package etcd_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/registry"
)

// exampleEtcd starts an in-process etcd so the example runs anywhere; use
// your cluster's addresses instead.
func exampleEtcd() (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "etcd-example-")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := embedetcd.Start(dir)
	if err != nil {
		log.Fatal(err)
	}
	return srv.Endpoint(), func() { srv.Stop(); os.RemoveAll(dir) }
}

func Example() {
	addr, stop := exampleEtcd()
	defer stop()

	r, err := etcd.New(etcd.Config{
		Endpoints: []string{addr},
		TTL:       10 * time.Second, // a crashed process vanishes 10 s after its last keepalive
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := &registry.Instance{
		ID:        "host-1",
		Name:      "helloworld",
		Version:   "v1.0.0",
		Endpoints: []string{"grpc://10.0.0.1:9000"},
	}
	// Kept alive (and restored after outages) until Deregister or Close.
	if err := r.Register(ctx, in); err != nil {
		log.Fatal(err)
	}

	list, err := r.GetService(ctx, "helloworld")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("get:", list[0], list[0].Endpoints)

	w, err := r.Watch(ctx, "helloworld")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	u, err := w.Next() // the current state, at once
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("watch:", u.Service, u.Source, len(u.Instances))

	for _, s := range r.Registrations() {
		fmt.Println("registration:", s.Instance, "live:", s.Live)
	}

	if err := r.Deregister(ctx, in); err != nil {
		log.Fatal(err)
	}
	u, err = w.Next()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("watch:", u.Service, len(u.Instances))
	// Output:
	// get: helloworld/host-1@v1.0.0 [grpc://10.0.0.1:9000]
	// watch: helloworld etcd 1
	// registration: helloworld/host-1@v1.0.0 live: true
	// watch: helloworld 0
}
