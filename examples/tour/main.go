// Command tour runs the code the README shows, against an etcd started
// in-process and a snapshot file in a temp dir, and exits by itself. The
// README's Go blocks are copied from the regions marked "readme:begin NAME"
// and "readme:end NAME" in this file and in the other examples; a test
// (readme_test.go) fails when the README and the compiled code differ, so
// the README cannot show code that does not compile or does not work.
//
//	go run ./examples/tour
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tour:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	dir, err := os.MkdirTemp("", "regchain-tour-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := embedetcd.Start(filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	fmt.Fprintln(out, "== standalone: one backend")
	if err := standalone(ctx, out, srv.Endpoint()); err != nil {
		return fmt.Errorf("standalone: %w", err)
	}
	fmt.Fprintln(out, "== the chain: etcd, a local file registry, the snapshot")
	if err := chainTour(ctx, out, srv.Endpoint(), dir, prometheus.NewRegistry()); err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	fmt.Fprintln(out, "== from config: a chain described by one string")
	if err := configTour(ctx, out, srv.Endpoint(), dir); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// configTour builds the registry from the compact config form that flags
// and environment variables carry (package regconfig).
func configTour(ctx context.Context, out io.Writer, endpoint, dir string) error {
	spec := "etcd://" + endpoint + "?ttl=10s|snapshot://" + filepath.Join(dir, "config.snapshot") + "|chain:?name=tour"
	// readme:begin regconfig-open
	cfg, err := regconfig.Parse(spec) // or decode a regconfig.Config from YAML/JSON
	if err != nil {
		return err // names the element or field and what is wrong
	}
	reg, err := regconfig.Open(cfg) // one backend, or a chain when there are several parts
	if err != nil {
		return err
	}
	defer reg.Close()
	// readme:end regconfig-open
	in := &registry.Instance{ID: "c1", Name: "configured", Endpoints: []string{"grpc://10.0.0.3:9000"}}
	if err := reg.Register(ctx, in); err != nil {
		return err
	}
	ins, err := reg.GetService(ctx, "configured")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "configured: %d instance(s) through %s\n", len(ins), cfg)
	return reg.Deregister(ctx, in)
}

// standalone is the README's first snippet: one backend, register, watch.
func standalone(ctx context.Context, out io.Writer, endpoint string) error {
	// readme:begin standalone
	r, err := etcd.New(etcd.Config{Endpoints: []string{endpoint}}) // TTL 15s, namespace /microservices
	if err != nil {
		return err
	}
	defer r.Close()

	err = r.Register(ctx, &registry.Instance{ID: "g1", Name: "greeter", Version: "v1",
		Endpoints: []string{"grpc://10.0.0.1:9000"}, Metadata: map[string]string{"weight": "10"}})
	if err != nil {
		return err
	}

	w, err := r.Watch(ctx, "greeter") // "" watches every service
	if err != nil {
		return err
	}
	for {
		u, err := w.Next() // the complete instance set; the first call returns at once
		if errors.Is(err, registry.ErrStopped) {
			break // after Stop, the Watch ctx done or the registry closed
		}
		if err != nil {
			continue // transient: the watcher retries by itself
		}
		fmt.Fprintln(out, u.Source, u.Service, len(u.Instances), "instance(s)")
		if len(u.Instances) == 1 {
			w.Stop() // the next Next returns ErrStopped
		}
	}
	// readme:end standalone
	return r.Deregister(ctx, &registry.Instance{ID: "g1", Name: "greeter"})
}

// chainTour is the README's chain snippet.
func chainTour(ctx context.Context, out io.Writer, endpoint, dir string, prom prometheus.Registerer) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	etcdReg, err := etcd.New(etcd.Config{Endpoints: []string{endpoint}, Logger: quiet})
	if err != nil {
		return err
	}
	defer etcdReg.Close()
	localReg, err := file.Open(filepath.Join(dir, "local.db"), file.Config{Logger: quiet})
	if err != nil {
		return err
	}
	defer localReg.Close()
	in := &registry.Instance{ID: "g2", Name: "greeter", Version: "v1", Endpoints: []string{"grpc://10.0.0.2:9000"}}

	// readme:begin chain
	store, err := file.OpenStore(filepath.Join(dir, "registry.snapshot"), file.Config{})
	if err != nil {
		return err
	}
	c, err := chain.New([]chain.Tier{
		{Name: "etcd", Registry: etcdReg},
		{Name: "local", Registry: localReg},
	}, chain.WithSnapshot(store), chain.WithOwnSnapshot(true), chain.WithFailbackAfter(30*time.Second))
	if err != nil {
		store.Close()
		return err
	}
	defer c.Close() // saves the snapshot and, with WithOwnSnapshot, closes the store

	if err := c.Register(ctx, in); err != nil { // written to every tier; replayed to tiers that were down
		return err
	}
	ins, err := c.GetService(ctx, "greeter") // from memory once watched: no I/O
	if err != nil {
		return err
	}
	st := c.Status() // tier health, source and age per service, pending writes
	prom.MustRegister(c.Collector())
	c.Freeze(true) // operator switch: serve only the snapshot
	// readme:end chain
	fmt.Fprintf(out, "greeter: %d instance(s); tiers:", len(ins))
	for _, t := range st.Tiers {
		fmt.Fprintf(out, " %s(up=%v)", t.Name, t.Up)
	}
	fmt.Fprintln(out)
	c.Freeze(false)
	return c.Deregister(ctx, in)
}
