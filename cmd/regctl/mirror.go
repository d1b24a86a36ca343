package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/regconfig"
	"github.com/regchain/regchain/registry"
)

// mirrorCmd runs "regctl mirror DEST ORIGIN [SERVICE...]": it keeps the
// services of the -registry (all of them without SERVICE) mirrored into the
// registry DEST, each record marked with ORIGIN (package mirror's rules),
// until interrupted; then it withdraws what it wrote and exits 0.
func (c *cli) mirrorCmd(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return usagef("mirror takes a destination registry URL and an origin name, got %d arguments", len(args))
	}
	if c.opts.json {
		return usagef("-json does not apply to mirror")
	}
	destURL, origin, services := args[0], args[1], args[2:]
	if strings.TrimSpace(origin) == "" {
		return usagef("mirror: empty origin name")
	}
	dest, err := parseTarget(destURL)
	if err != nil {
		return err
	}
	for _, b := range dest.cfg.Backends {
		if b.Type == regconfig.TypeFile {
			return usagef("mirror: a file:// destination is opened read-only; mirror into etcd, consul or zk")
		}
	}
	if dest.cfg.Static.On() {
		return usagef("mirror: a static tier is read-only; mirror into etcd, consul or zk")
	}
	if err := dest.apply(c.opts.conn); err != nil {
		return err
	}
	for _, s := range services {
		if err := registry.ValidateName(s); err != nil {
			return usagef("mirror: service %q: %v", s, err)
		}
	}
	return c.withRegistry(ctx, "mirror to "+dest.String(), func(ctx context.Context, src registry.Registry, _ *target) error {
		dst, err := dest.open(c.opts.timeout, c.log)
		if err != nil {
			return fmt.Errorf("open %s: %w", dest, err)
		}
		defer dst.Close()
		m, err := mirror.New(mirror.Config{
			Source: src, Target: dst, Origin: origin, Services: services,
			Timeout: c.opts.timeout, Logger: c.log,
		})
		if err != nil {
			return err
		}
		what := "every service"
		if len(services) > 0 {
			what = strings.Join(services, ", ")
		}
		fmt.Fprintf(c.stderr, "regctl: mirroring %s as origin %q until interrupted\n", what, origin)
		done := make(chan error, 1)
		go func() { done <- m.Run(context.Background()) }()
		select {
		case err := <-done:
			return err // Run ends by itself only on an error
		case <-ctx.Done():
		}
		wctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout)
		err = m.Withdraw(wctx)
		cancel()
		<-done
		if err != nil {
			fmt.Fprintf(c.stderr, "regctl: %v (the records left expire with their TTL)\n", err)
		}
		s := m.Stats()
		fmt.Fprintf(c.stdout, "mirror stopped: %d registered, %d deregistered, %d failed writes, %d resyncs\n",
			s.Registered, s.Deregistered, s.WriteFailures, s.Resyncs)
		return nil
	})
}
