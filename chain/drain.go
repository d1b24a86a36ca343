package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/regchain/regchain/registry"
)

// Drain is the shutdown path: it deregisters every instance the chain
// keeps registered from every writable tier, then waits until a watch of
// each of their services on each writable tier that is up no longer shows
// them, and returns. A SIGTERM handler calls it before it stops taking
// traffic, so that clients have been told first.
//
// ctx bounds the whole call. When it ends first, Drain returns an error
// wrapping ctx's error and naming the tiers and instances still shown.
// Tiers that are down are not waited for (nothing can be read from them):
// the removal is replayed to them if they come back while the chain runs,
// and their leases and sessions expire anyway; they are named in the log.
// Drain returns registry.ErrClosed after Close.
//
// Drain waits for a fresh watch of each tier; clients that have been
// watching for a while see the removal by their own watch's latency, which
// may end later: regchain's Consul watchers start at most one blocking
// query per 50ms, and a change seen only through Consul's catalog waits for
// their next full re-read (at least 1s apart); measured in bench/drain. A
// shutdown path that must outwait them sleeps that much more after Drain.
//
// Clients that read through their own Chain see the removal at once only
// when it is no drop to their guard (Guard.MaxDropShare): draining the last
// instance of a service, or most of them at once, is held by the clients'
// guards for up to Guard.Window, during which they keep the instance. Instances registered while
// Drain runs are not drained.
func (c *Chain) Drain(ctx context.Context) error {
	if c.isClosed() {
		return c.errClosed("drain")
	}
	c.regMu.Lock()
	var own []*registry.Instance
	for _, r := range c.regs {
		if r.live {
			own = append(own, r.inst)
		}
	}
	c.regMu.Unlock()
	byService := make(map[string][]string)
	var errs []error
	for _, in := range own {
		if err := c.Deregister(ctx, in); err != nil {
			errs = append(errs, err)
			continue
		}
		byService[in.Name] = append(byService[in.Name], in.ID)
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, t := range c.tiers {
		if t.readOnly {
			continue
		}
		if !t.isUp() {
			c.log.Warn("chain: drain: tier is down: not waited for", "tier", t.name)
			continue
		}
		for name, ids := range byService {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := waitGone(ctx, t.reg, name, ids); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("tier %s: %w", t.name, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chain: drain: %w", err)
	}
	c.log.Info("chain: drained", "instances", len(own))
	return nil
}

// waitGone watches name in r until no instance with one of ids is shown,
// or ctx ends.
func waitGone(ctx context.Context, r registry.Registry, name string, ids []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := r.Watch(ctx, name)
	if err != nil {
		return fmt.Errorf("watch %s: %w", registry.Quote(name), err)
	}
	defer w.Stop()
	stop := context.AfterFunc(ctx, func() { _ = w.Stop() })
	defer stop()
	shown := ids
	for {
		u, err := w.Next()
		if ctx.Err() != nil {
			return fmt.Errorf("%s still shows %s: %w", registry.Quote(name), strings.Join(shown, ","), context.Cause(ctx))
		}
		if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
			return fmt.Errorf("watch %s: %w", registry.Quote(name), err)
		}
		if err != nil {
			continue // a transient watch error: the watcher retries
		}
		shown = shown[:0:0]
		for _, in := range u.Instances {
			if slices.Contains(ids, in.ID) {
				shown = append(shown, in.ID)
			}
		}
		if len(shown) == 0 {
			return nil
		}
	}
}
