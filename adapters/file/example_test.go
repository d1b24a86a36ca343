package file_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/registry"
)

func Example() {
	dir, err := os.MkdirTemp("", "regchain-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	r, err := file.Open(filepath.Join(dir, "registry.db"), file.Config{})
	if err != nil {
		log.Fatal(err)
	}
	w, err := r.Watch(ctx, "greeter")
	if err != nil {
		log.Fatal(err)
	}
	u, _ := w.Next() // the current state, at once
	fmt.Println(u.Service, len(u.Instances), u.Source)

	err = r.Register(ctx, &registry.Instance{
		ID:        "greeter-1",
		Name:      "greeter",
		Version:   "v1.0.0",
		Metadata:  map[string]string{"zone": "z1"},
		Endpoints: []string{"grpc://10.0.0.1:9000"},
	})
	if err != nil {
		log.Fatal(err)
	}
	u, _ = w.Next()
	fmt.Println(u.Service, u.Instances[0].ID, u.Instances[0].Endpoints, "revision", u.Revision)
	w.Stop()
	r.Close()

	// Registrations stay in the file.
	r, err = file.Open(filepath.Join(dir, "registry.db"), file.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	ins, err := r.GetService(ctx, "greeter")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after reopening:", ins[0])
	// Output:
	// greeter 0 file
	// greeter greeter-1 [grpc://10.0.0.1:9000] revision 1
	// after reopening: greeter/greeter-1@v1.0.0
}

func ExampleOpenStore() {
	dir, err := os.MkdirTemp("", "regchain-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := file.OpenStore(filepath.Join(dir, "snapshot.db"), file.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	confirmed := time.Now().Add(-90 * time.Second)
	err = s.SaveSnapshot(ctx, []*registry.Update{{
		Service:  "greeter",
		Source:   "etcd",
		Revision: 1234,
		Time:     confirmed,
		Instances: []*registry.Instance{
			{ID: "b", Name: "greeter", Endpoints: []string{"grpc://10.0.0.2:9000"}},
			{ID: "a", Name: "greeter", Endpoints: []string{"grpc://10.0.0.1:9000"}},
		},
	}})
	if err != nil {
		log.Fatal(err)
	}

	entries, err := s.LoadSnapshot(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		u := e.Update
		fmt.Println(u.Service, "from", u.Source, "revision", u.Revision)
		for _, in := range u.Instances {
			fmt.Println(" ", in.ID, in.Endpoints)
		}
		fmt.Println("  stale by more than a minute:", e.Age(time.Now()) > time.Minute)
	}
	// Output:
	// greeter from etcd revision 1234
	//   a [grpc://10.0.0.1:9000]
	//   b [grpc://10.0.0.2:9000]
	//   stale by more than a minute: true
}

func ExampleOpen_locked() {
	dir, err := os.MkdirTemp("", "regchain-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "registry.db")

	r, err := file.Open(path, file.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	// The file is taken: a second open gives up after Timeout.
	_, err = file.Open(path, file.Config{Timeout: 100 * time.Millisecond})
	fmt.Println(errors.Is(err, file.ErrLocked), errors.Is(err, registry.ErrUnavailable))
	// Output:
	// true true
}
