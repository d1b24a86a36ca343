package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

// parseInstance reads the instance of register from its arguments: either
// one JSON object in Kratos' ServiceInstance layout, or NAME ID followed by
// endpoints (anything with "://") and KEY=VALUE metadata, where the key
// "version" sets the version.
func parseInstance(args []string) (*registry.Instance, error) {
	if len(args) == 1 && strings.HasPrefix(strings.TrimSpace(args[0]), "{") {
		var in registry.Instance
		if err := json.Unmarshal([]byte(args[0]), &in); err != nil {
			return nil, usagef("register: bad JSON instance: %v", err)
		}
		return &in, nil
	}
	if len(args) < 3 {
		return nil, usagef("register takes NAME ID ENDPOINT... [version=V] [KEY=VALUE...] or one JSON instance, got %d arguments", len(args))
	}
	in := &registry.Instance{Name: args[0], ID: args[1]}
	for _, a := range args[2:] {
		if strings.Contains(a, "://") {
			in.Endpoints = append(in.Endpoints, a)
			continue
		}
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usagef("register: %q is neither an endpoint (scheme://host:port) nor KEY=VALUE", a)
		}
		if k == "version" {
			in.Version = v
			continue
		}
		if in.Metadata == nil {
			in.Metadata = make(map[string]string)
		}
		in.Metadata[k] = v
	}
	return in, nil
}

// repair runs register and deregister against the -registry backend.
func (c *cli) repair(ctx context.Context, cmd string, args []string) error {
	t, err := parseTarget(c.opts.registry)
	if err != nil {
		return err
	}
	var in *registry.Instance
	switch cmd {
	case "register":
		if in, err = parseInstance(args); err != nil {
			return err
		}
	case "deregister":
		if len(args) != 2 {
			return usagef("deregister takes NAME ID, got %d arguments", len(args))
		}
		in = &registry.Instance{Name: args[0], ID: args[1]}
	}
	op := fmt.Sprintf("%s %s on %s", cmd, in.Key(), t)
	var reg registry.Registry
	if path, ok := t.filePath(); ok {
		// Repair writes: the file registry is opened for writing.
		reg, err = file.Open(path, file.Config{Timeout: c.opts.timeout, Logger: c.log})
	} else if err = t.apply(c.opts.conn); err == nil {
		reg, err = t.open(c.opts.timeout, c.log)
	}
	if err != nil {
		return describe(ctx, op, err)
	}
	defer reg.Close()
	if cmd == "register" {
		err = c.register(ctx, reg, in, t)
	} else {
		err = c.deregister(ctx, reg, in)
	}
	if err != nil {
		return describe(ctx, op, err)
	}
	return nil
}

// register registers in and keeps it registered (heartbeats, lease
// renewals) until ctx ends (SIGINT, SIGTERM), then deregisters it: every
// network backend drops a registration whose owner is gone, so a
// registration outlives regctl only on a file registry.
func (c *cli) register(ctx context.Context, reg registry.Registry, in *registry.Instance, t *target) error {
	cctx, cancel := c.call(ctx)
	err := reg.Register(cctx, in)
	cancel()
	if err != nil {
		return err
	}
	if _, ok := t.filePath(); ok {
		fmt.Fprintf(c.stdout, "registered %s in %s\n", in.Key(), t)
		return nil
	}
	fmt.Fprintf(c.stdout, "registered %s on %s; keeping it registered until interrupted (Ctrl-C), then deregistering it\n", in.Key(), t)
	<-ctx.Done()
	dctx, cancel := c.call(context.WithoutCancel(ctx))
	defer cancel()
	if err := reg.Deregister(dctx, in); err != nil {
		return fmt.Errorf("deregister after interrupt: %w", err)
	}
	fmt.Fprintf(c.stdout, "deregistered %s\n", in.Key())
	return nil
}

// deregister removes the instance; it fails with "not found" when the
// backend does not show it.
func (c *cli) deregister(ctx context.Context, reg registry.Registry, in *registry.Instance) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	got, err := reg.GetService(cctx, in.Name)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	if !slices.ContainsFunc(got, func(g *registry.Instance) bool { return g.ID == in.ID }) {
		return fmt.Errorf("%w: %s is not registered", registry.ErrNotFound, in.Key())
	}
	if err := reg.Deregister(cctx, in); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "deregistered %s\n", in.Key())
	return nil
}

// filePath returns the path of a target that is one file registry and
// nothing else.
func (t *target) filePath() (string, bool) {
	c := t.cfg
	if len(c.Backends) != 1 || c.Backends[0].Type != regconfig.TypeFile || c.Static.On() || c.Snapshot.Path != "" {
		return "", false
	}
	return c.Backends[0].Path, true
}
