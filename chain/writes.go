package chain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/regchain/regchain/registry"
)

// reg is one entry of the chain's desired set: an instance to keep
// registered (live) or to remove (a tombstone, forgotten once every
// writable tier has it removed).
type reg struct {
	key       string
	inst      *registry.Instance // immutable: replaced, never modified
	live      bool
	gen       uint64 // bumped by every Register/Deregister of the key
	since     time.Time
	tiers     []*regTier // per tier; nil for read-only tiers
	isLive    bool       // Live as Registrations last reported it
	liveSince time.Time  // when isLive last changed
}

// regTier is the state of one reg in one writable tier. sem serializes the
// writes of the reg to the tier, so that a replay and a newer call cannot
// land in the wrong order; the other fields are guarded by Chain.regMu.
type regTier struct {
	sem      chan struct{}
	doneGen  uint64 // the gen the tier holds (or rejected); != reg.gen: pending
	rejected bool   // the tier refused doneGen as invalid: it does not hold it
	attempts int
	lastErr  error
}

var errTierDown = errors.New("tier is down")

func (c *Chain) newReg(key string) *reg {
	r := &reg{key: key, tiers: make([]*regTier, len(c.tiers))}
	for i, t := range c.tiers {
		if !t.readOnly {
			r.tiers[i] = &regTier{sem: make(chan struct{}, 1)}
		}
	}
	return r
}

func (c *Chain) writable() bool {
	for _, t := range c.tiers {
		if !t.readOnly {
			return true
		}
	}
	return false
}

// Register implements registry.Registry. The instance joins the chain's
// desired set and is written to every writable tier that is up, in
// parallel, within ctx. Tiers that are down or fail get it replayed in the
// background (with backoff) and when they recover; Register then still
// returns nil unless WithStrictRegister is set and no tier accepted it. A
// tier that rejects the instance as invalid makes Register return that
// error.
func (c *Chain) Register(ctx context.Context, in *registry.Instance) error {
	if err := registry.Validate(in); err != nil {
		return err
	}
	if c.isClosed() {
		return c.errClosed("register " + in.String())
	}
	if err := c.validate(in); err != nil {
		return err
	}
	if !c.writable() {
		return fmt.Errorf("chain: register %s: %w: every tier is read-only", in, registry.ErrInvalid)
	}
	c.regMu.Lock()
	r := c.regs[in.Key()]
	if r == nil {
		r = c.newReg(in.Key())
		c.regs[r.key] = r
	}
	prevInst, prevLive, prevSince := r.inst, r.live, r.since
	r.inst, r.live, r.since = in.Clone(), true, time.Now()
	delete(c.gone, r.key)
	r.gen++
	gen := r.gen
	c.regMu.Unlock()

	accepted, errs := c.writeAll(ctx, r)
	if err := invalidErr(errs); err != nil {
		// ErrInvalid means nothing written: take the registration back
		// from the tiers that accepted it.
		c.undo(r, gen, prevInst, prevLive, prevSince, in)
		return fmt.Errorf("chain: register %s: %w", in, err)
	}
	if c.opts.strict && accepted == 0 {
		// Nothing was accepted, but a timed-out write may have landed.
		c.undo(r, gen, prevInst, prevLive, prevSince, in)
		return fmt.Errorf("chain: register %s: %w: no tier accepted it: %w", in, registry.ErrUnavailable, errors.Join(errs...))
	}
	return nil
}

// Deregister implements registry.Registry. The instance leaves the desired
// set and is removed from every writable tier that is up; tiers that are
// down get the removal when they recover. Only Name and ID are required.
func (c *Chain) Deregister(ctx context.Context, in *registry.Instance) error {
	if in == nil {
		return fmt.Errorf("chain: deregister: %w: nil instance", registry.ErrInvalid)
	}
	if err := registry.ValidateName(in.Name); err != nil {
		return err
	}
	if err := registry.ValidateID(in.ID); err != nil {
		return err
	}
	if c.isClosed() {
		return c.errClosed("deregister " + in.String())
	}
	if !c.writable() {
		return fmt.Errorf("chain: deregister %s: %w: every tier is read-only", in, registry.ErrInvalid)
	}
	c.regMu.Lock()
	r := c.regs[in.Key()]
	if r == nil {
		r = c.newReg(in.Key())
		r.inst = in.Clone()
		c.regs[r.key] = r
	}
	r.live, r.since = false, time.Now()
	r.gen++
	c.goneLocked(r.key, r.since)
	c.regMu.Unlock()
	// A held drop may be the chain's own removal now.
	c.recompute(in.Name)

	_, errs := c.writeAll(ctx, r)
	if err := invalidErr(errs); err != nil {
		return fmt.Errorf("chain: deregister %s: %w", in, err)
	}
	return nil
}

// recompute has the service's view decided again, if the chain has one:
// its own registrations changed what decide looks at.
func (c *Chain) recompute(name string) {
	c.mu.RLock()
	s := c.services[name]
	c.mu.RUnlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recomputeLocked(time.Now(), false, false)
}

// undo goes back to what the chain kept for r before the Register of gen
// (the previous registration, or a tombstone so that it is cleaned up) and
// has every tier rewritten with it, unless a newer call came meanwhile.
func (c *Chain) undo(r *reg, gen uint64, prevInst *registry.Instance, prevLive bool, prevSince time.Time, in *registry.Instance) {
	c.regMu.Lock()
	if r.gen == gen {
		r.inst, r.live, r.since = prevInst, prevLive, prevSince
		if r.inst == nil {
			r.inst = in.Clone()
		}
		if !r.live {
			c.goneLocked(r.key, time.Now())
		}
		r.gen++
	}
	c.regMu.Unlock()
	c.wakeReplays()
}

// ValidateInstance implements registry.Validator: it returns the error
// Register would return for in without writing anything (registry
// validation, then every writable tier's own Validator), so that a chain
// can be a tier of another and keep the ErrInvalid rule.
func (c *Chain) ValidateInstance(in *registry.Instance) error {
	if err := registry.Validate(in); err != nil {
		return err
	}
	return c.validate(in)
}

// validate checks in against every writable tier that says what it
// accepts (registry.Validator), before anything is written.
func (c *Chain) validate(in *registry.Instance) error {
	for _, t := range c.tiers {
		if t.readOnly {
			continue
		}
		if v, ok := t.reg.(registry.Validator); ok {
			if err := v.ValidateInstance(in); err != nil {
				return fmt.Errorf("chain: register %s: tier %s refuses it, nothing written: %w", in, t.name, err)
			}
		}
	}
	return nil
}

func invalidErr(errs []error) error {
	var inv []error
	for _, err := range errs {
		if errors.Is(err, registry.ErrInvalid) {
			inv = append(inv, err)
		}
	}
	return errors.Join(inv...)
}

// writeAll writes r to every writable tier in parallel. It returns how many
// tiers hold r now and the errors of the others; the others are left to the
// replay loops.
func (c *Chain) writeAll(ctx context.Context, r *reg) (accepted int, errs []error) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, t := range c.tiers {
		if t.readOnly {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.write(ctx, r, t)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				accepted++
				return
			}
			errs = append(errs, fmt.Errorf("tier %s: %w", t.name, err))
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		c.wakeReplays()
	}
	return accepted, errs
}

func (c *Chain) wakeReplays() {
	for _, t := range c.tiers {
		if !t.readOnly {
			t.wakeReplay()
		}
	}
}

// write brings tier t up to date with r, if it is not already. wrote tells
// whether a call was made and succeeded.
func (c *Chain) write(ctx context.Context, r *reg, t *tier) (wrote bool, err error) {
	rt := r.tiers[t.idx]
	select {
	case rt.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-c.ctx.Done():
		return false, c.errClosed("write")
	}
	defer func() { <-rt.sem }()

	c.regMu.Lock()
	gen, live, inst := r.gen, r.live, r.inst
	done := rt.doneGen == gen
	c.regMu.Unlock()
	if done {
		return false, nil
	}
	if !t.isUp() {
		return false, errTierDown
	}
	start := time.Now()
	err = c.call(ctx, t, func(ctx context.Context) error {
		if live {
			return t.reg.Register(ctx, inst)
		}
		return t.reg.Deregister(ctx, inst)
	})
	c.m.lat.observe(c.m.lat.write, t.name, start, err)

	c.regMu.Lock()
	defer c.regMu.Unlock()
	switch {
	case err == nil:
		if r.gen == gen {
			rt.doneGen, rt.rejected = gen, false
		}
		rt.attempts, rt.lastErr = 0, nil
	case errors.Is(err, registry.ErrInvalid):
		// Retrying cannot help; the error went to the caller. The tier does
		// not hold this gen: Registrations reports it not Live.
		if r.gen == gen {
			rt.doneGen, rt.rejected = gen, true
		}
		rt.attempts, rt.lastErr = 0, err
	default:
		rt.attempts++
		rt.lastErr = err
	}
	if !r.live && c.regs[r.key] == r && r.settledLocked() {
		delete(c.regs, r.key)
	}
	return err == nil, err
}

// settledLocked reports whether every writable tier holds r's current gen.
func (r *reg) settledLocked() bool {
	for _, rt := range r.tiers {
		if rt != nil && rt.doneGen != r.gen {
			return false
		}
	}
	return true
}

// replayAll marks every entry of the desired set as pending for t, which
// just recovered and may have lost anything.
func (c *Chain) replayAll(t *tier) {
	c.regMu.Lock()
	for _, r := range c.regs {
		r.tiers[t.idx].doneGen = 0
	}
	c.regMu.Unlock()
	t.wakeReplay()
}

// pendingFor returns the entries tier t does not hold yet, oldest first.
func (c *Chain) pendingFor(t *tier) []*reg {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	var out []*reg
	for _, r := range c.regs {
		if rt := r.tiers[t.idx]; rt != nil && rt.doneGen != r.gen {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *reg) int { return a.since.Compare(b.since) })
	return out
}

// replayOnce writes the pending entries of the desired set into the tier
// (the loop starts it when woken while the tier is up, and at the retry
// time after a failure, with backoff).
func (t *tier) replayOnce() {
	c := t.c
	defer func() {
		t.replayBusy.Store(false)
		c.kickLoop()
	}()
	failed, n := false, 0
	for _, r := range c.pendingFor(t) {
		wrote, err := c.write(c.ctx, r, t)
		if c.ctx.Err() != nil {
			return
		}
		if wrote {
			n++
			t.replays.Add(1)
		}
		if err != nil && !errors.Is(err, registry.ErrInvalid) {
			failed = true
			c.log.Debug("chain: replay failed", "tier", t.name, "instance", r.key, "error", err)
			break
		}
	}
	if n > 0 {
		c.log.Info("chain: replayed registrations", "tier", t.name, "count", n)
	}
	if failed {
		t.replayAt.Store(time.Now().Add(t.replayBackoff.Next()).UnixNano())
	} else {
		t.replayBackoff.Reset()
	}
}

// pendingCount returns how many entries tier t does not hold yet (all
// tiers when t is nil).
func (c *Chain) pendingCount(t *tier) int {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	n := 0
	for _, r := range c.regs {
		if t != nil {
			if rt := r.tiers[t.idx]; rt != nil && rt.doneGen != r.gen {
				n++
			}
			continue
		}
		if !r.settledLocked() {
			n++
		}
	}
	return n
}

// goneLocked records that the chain deregistered key at now, and forgets
// records older than twice the guard window.
func (c *Chain) goneLocked(key string, now time.Time) {
	for k, at := range c.gone {
		if r := c.regs[k]; (r == nil || r.live) && now.Sub(at) >= 2*c.opts.guard.window() {
			delete(c.gone, k) // kept while its deregistration is pending
		}
	}
	c.gone[key] = now
}
