package chain

import (
	"context"
	"errors"
	"time"

	"github.com/regchain/regchain/registry"
)

// This file holds a tier's probes: the health checks that close its
// circuit, and the check of the chain's own registrations that follows a
// successful one on tiers that cannot report them.

// probeOnce probes the tier once (the loop starts it at once and then
// every probe interval, counted from the start of the last probe).
func (t *tier) probeOnce() {
	defer func() {
		t.probeBusy.Store(false)
		t.c.kickLoop()
	}()
	start := time.Now()
	t.probeAt.Store(start.Add(t.c.opts.probeInterval).UnixNano())
	ctx, cancel := context.WithTimeout(t.c.ctx, t.c.opts.probeTimeout)
	err := t.ping(ctx)
	t.c.m.lat.observe(t.c.m.lat.probe, t.name, start, err)
	cancel()
	if t.c.ctx.Err() != nil {
		return
	}
	if err != nil && ctx.Err() != nil && !countsAsFailure(err) {
		err = errors.Join(registry.ErrUnavailable, err)
	}
	t.report(err, true)
	if err == nil && t.verify {
		t.verifyOwn()
	}
}

// verifyOwn reads the services the chain keeps registrations of from a
// tier that cannot report them (no registry.RegistrationReporter) and has
// the missing ones written again (healOwn), so that Registrations stays
// true of such tiers too. Called by the probe loop after a successful
// probe; one read per service of this process, bounded by the probe
// timeout.
func (t *tier) verifyOwn() {
	c := t.c
	for _, name := range c.ownServices() {
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.probeTimeout)
		got, err := t.reg.GetService(ctx, name)
		cancel()
		if errors.Is(err, registry.ErrNotFound) {
			got, err = nil, nil
		}
		if err != nil {
			return // the next probe tells
		}
		c.healOwn(t, name, got)
	}
}
