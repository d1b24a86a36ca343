// Command standalone uses one regchain backend directly, with no chain and
// no server to install: the bbolt file backend. It registers two instances,
// watches the service, deregisters one, then opens the file again as a
// restarted process would and finds the registration still there.
//
//	go run ./examples/standalone
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/registry"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "standalone:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	dir, err := os.MkdirTemp("", "regchain-standalone-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "registry.db")
	ctx := context.Background()

	r, err := file.Open(path, file.Config{})
	if err != nil {
		return err
	}
	defer r.Close()

	watcher, err := r.Watch(ctx, "greeter")
	if err != nil {
		return err
	}
	defer watcher.Stop()
	show := func() error {
		u, err := watcher.Next()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "watch: %s has %d instance(s) %v (source %s, revision %d)\n", u.Service, len(u.Instances), ids(u.Instances), u.Source, u.Revision)
		return nil
	}
	if err := show(); err != nil { // the current state, at once: empty
		return err
	}

	g1 := &registry.Instance{ID: "g1", Name: "greeter", Version: "v1", Endpoints: []string{"grpc://127.0.0.1:9001"}, Metadata: map[string]string{"weight": "10"}}
	g2 := &registry.Instance{ID: "g2", Name: "greeter", Version: "v1", Endpoints: []string{"grpc://127.0.0.1:9002"}}
	for _, in := range []*registry.Instance{g1, g2} {
		if err := r.Register(ctx, in); err != nil {
			return err
		}
		if err := show(); err != nil {
			return err
		}
	}

	bad := &registry.Instance{ID: "g3", Name: "greeter", Endpoints: []string{"127.0.0.1:9003"}}
	err = r.Register(ctx, bad)
	fmt.Fprintf(w, "register without a scheme: ErrInvalid=%v\n", errors.Is(err, registry.ErrInvalid))

	if err := r.Deregister(ctx, g2); err != nil {
		return err
	}
	if err := show(); err != nil {
		return err
	}
	watcher.Stop()
	if err := r.Close(); err != nil {
		return err
	}

	// A restarted process opens the same file: the registration is there.
	r2, err := file.Open(path, file.Config{})
	if err != nil {
		return err
	}
	defer r2.Close()
	ins, err := r2.GetService(ctx, "greeter")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "after reopening the file: %v at %v\n", ids(ins), ins[0].Endpoints)
	_, err = r2.GetService(ctx, "nobody")
	fmt.Fprintf(w, "unknown service: ErrNotFound=%v\n", errors.Is(err, registry.ErrNotFound))
	return nil
}

func ids(ins []*registry.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}
