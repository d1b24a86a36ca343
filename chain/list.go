package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

// ListServices implements registry.Registry. It asks the first tier that is
// up (FirstHealthy, hedged like a first read: after WithHedgeDelay without
// an answer the next tier is asked too, and the snapshot answers if it
// holds anything) or every tier that is up (Merge); when none answers, or
// while frozen, it lists the services of the snapshot that have instances.
func (c *Chain) ListServices(ctx context.Context) ([]string, error) {
	if c.isClosed() {
		return nil, c.errClosed("list services")
	}
	if !c.frozen.Load() && c.opts.policy == FirstHealthy {
		return c.listHedged(ctx)
	}
	if !c.frozen.Load() {
		set := make(map[string]struct{})
		answered := false
		var errs []error
		for _, t := range c.tiers {
			if !t.isUp() {
				continue
			}
			var names []string
			err := c.call(ctx, t, func(ctx context.Context) error {
				var err error
				names, err = t.reg.ListServices(ctx)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("chain: list services: %w", ctx.Err())
				}
				if !failover(err) {
					return nil, fmt.Errorf("chain: list services: tier %s: %w", t.name, err)
				}
				errs = append(errs, fmt.Errorf("tier %s: %w", t.name, err))
				continue
			}
			answered = true
			for _, n := range names {
				set[n] = struct{}{}
			}
			if c.opts.policy == FirstHealthy {
				break
			}
		}
		if answered {
			out := make([]string, 0, len(set))
			for n := range set {
				out = append(out, n)
			}
			slices.Sort(out)
			return out, nil
		}
		if !c.snap.any() {
			if len(errs) == 0 {
				errs = append(errs, errors.New("every tier is down"))
			}
			return nil, fmt.Errorf("chain: list services: %w: %w", registry.ErrUnavailable, errors.Join(errs...))
		}
	}
	return c.snap.names(time.Now()), nil
}

// listHedged is ListServices under FirstHealthy.
func (c *Chain) listHedged(ctx context.Context) ([]string, error) {
	type result struct {
		t     *tier
		names []string
		err   error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the calls still running: not the tiers' fault
	results := make(chan result, len(c.tiers))
	next, running := 0, 0
	var errs []error
	ask := func() {
		for ; next < len(c.tiers); next++ {
			t := c.tiers[next]
			if !t.isUp() {
				continue
			}
			next++
			if c.spawn(func() {
				var names []string
				err := c.call(ctx, t, func(ctx context.Context) error {
					var err error
					names, err = t.reg.ListServices(ctx)
					return err
				})
				results <- result{t, names, err}
			}) {
				running++
			}
			return
		}
	}
	ask()
	hedge := time.NewTimer(c.opts.hedgeDelay)
	defer hedge.Stop()
	for running > 0 {
		select {
		case r := <-results:
			running--
			switch {
			case r.err == nil:
				out := slices.Clone(r.names)
				slices.Sort(out)
				return slices.Compact(out), nil
			case ctx.Err() != nil:
				return nil, fmt.Errorf("chain: list services: %w", ctx.Err())
			case !failover(r.err):
				return nil, fmt.Errorf("chain: list services: tier %s: %w", r.t.name, r.err)
			}
			errs = append(errs, fmt.Errorf("tier %s: %w", r.t.name, r.err))
			ask()
		case <-hedge.C:
			if c.snap.any() {
				return c.snap.names(time.Now()), nil
			}
			ask()
			hedge.Reset(c.opts.hedgeDelay)
		case <-ctx.Done():
			return nil, fmt.Errorf("chain: list services: %w", ctx.Err())
		}
	}
	if c.snap.any() {
		return c.snap.names(time.Now()), nil
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("every tier is down"))
	}
	return nil, fmt.Errorf("chain: list services: %w: %w", registry.ErrUnavailable, errors.Join(errs...))
}
