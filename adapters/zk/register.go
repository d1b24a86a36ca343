package zk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// registration is one (Name, ID) this Registry keeps registered (want) or
// is removing (!want). Its keeper goroutine converges ZooKeeper to it.
type registration struct {
	key  string
	path string
	kick chan struct{} // capacity 1: wakes the keeper

	mu       sync.Mutex // guards the fields below
	in       *registry.Instance
	data     []byte
	want     bool          // true: the node must exist with data; false: it must not
	gen      uint64        // bumped by every Register and Deregister
	tried    uint64        // gen of the keeper's last finished attempt
	triedErr error         // that attempt's error
	changed  chan struct{} // closed and replaced when tried changes
	live     bool
	everLive bool
	since    time.Time
	attempts int
	lastErr  error
}

func (g *registration) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// Register creates the ephemeral node <root>/<name>/<id> holding the
// instance's JSON (parents are created as needed) or updates its data, and
// keeps it there for as long as the Registry lives: a node lost with its
// session, deleted or overwritten by someone else is put back, with capped
// backoff, until Deregister or Close.
//
// Register returns once the first write has succeeded or failed, within ctx
// and Config.Timeout. When it fails (an error wrapping
// registry.ErrUnavailable if ZooKeeper could not be reached), the
// registration is kept and retried in the background; Registrations shows
// it, and Deregister abandons it. Invalid input returns ErrInvalid and keeps
// nothing, as does a first write ZooKeeper refuses (ErrNoAuth, ErrAuthFailed,
// ErrInvalidACL: wrapped with registry.ErrInvalid), which no retry would
// change.
func (r *Registry) Register(ctx context.Context, in *registry.Instance) error {
	data, err := registry.Marshal(in)
	if err != nil {
		return fmt.Errorf("zookeeper: register: %w", err)
	}
	key := in.Key()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("zookeeper: register %s: %w", in, registry.ErrClosed)
	}
	g := r.regs[key]
	fresh := g == nil
	if fresh {
		g = &registration{
			key:     key,
			path:    r.root.instancePath(in.Name, in.ID),
			kick:    make(chan struct{}, 1),
			changed: make(chan struct{}),
			since:   time.Now(),
		}
		r.regs[key] = g
	}
	g.mu.Lock() // under r.mu: a keeper retiring g checks gen under both
	g.in, g.data, g.want = in.Clone(), data, true
	g.gen++
	gen := g.gen
	g.mu.Unlock()
	if fresh { // now that g holds its first generation
		r.wg.Add(1)
		go r.keep(g)
	}
	r.mu.Unlock()
	g.poke()
	return r.await(ctx, g, gen, "register "+in.String())
}

// Deregister stops keeping the instance and deletes its node. Only Name and
// ID are used. Deregistering an instance that is not registered deletes its
// node if there is one and is not an error. If the delete fails, the keeper
// goes on trying in the background; the node is ephemeral in any case.
func (r *Registry) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := registry.ValidateKey(in); err != nil {
		return fmt.Errorf("zookeeper: deregister: %w", err)
	}
	op := "deregister " + in.Name + "/" + in.ID
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("zookeeper: %s: %w", op, registry.ErrClosed)
	}
	g := r.regs[in.Key()]
	if g == nil {
		r.mu.Unlock()
		ctx, cancel := r.bound(ctx)
		defer cancel()
		if err := r.do(ctx, func() error { return r.remove(r.root.instancePath(in.Name, in.ID)) }); err != nil {
			return r.fail(op, err)
		}
		return nil
	}
	g.mu.Lock()
	g.want = false
	g.gen++
	gen := g.gen
	g.mu.Unlock()
	r.mu.Unlock()
	g.poke()
	return r.await(ctx, g, gen, op)
}

// await waits until g's keeper has finished an attempt at generation gen or
// later and returns that attempt's error.
func (r *Registry) await(ctx context.Context, g *registration, gen uint64, op string) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	for {
		g.mu.Lock()
		tried, err, changed := g.tried, g.triedErr, g.changed
		g.mu.Unlock()
		if tried >= gen {
			if err != nil {
				return r.fail(op, err)
			}
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return r.fail(op+" (kept pending)", context.Cause(ctx))
		case <-r.ctx.Done():
			return r.fail(op, registry.ErrClosed)
		}
	}
}

// Registrations implements registry.RegistrationReporter. Live is the last
// state the keeper confirmed: during a disconnection shorter than the session
// timeout ZooKeeper keeps the node and it stays Live; once the session is
// known to be lost it turns false until the node is re-created.
func (r *Registry) Registrations() []registry.RegistrationState {
	r.mu.Lock()
	regs := make([]*registration, 0, len(r.regs))
	for _, g := range r.regs {
		regs = append(regs, g)
	}
	r.mu.Unlock()
	out := make([]registry.RegistrationState, 0, len(regs))
	for _, g := range regs {
		g.mu.Lock()
		if g.want {
			out = append(out, registry.RegistrationState{
				Instance:  g.in.Clone(),
				Live:      g.live,
				Since:     g.since,
				Attempts:  g.attempts,
				LastError: g.lastErr,
			})
		}
		g.mu.Unlock()
	}
	registry.SortRegistrations(out)
	return out
}

// keep is g's keeper: it makes ZooKeeper match g (node present with g.data,
// or absent), then waits on a watch of the node, a kick or a retry timer,
// until g is deregistered and its node deleted, or the Registry closes.
//
// A repair the node's watch asked for (someone else deleted, replaced or
// overwrote the node) is made at once the first time; repeated ones back
// off, so two live Registries holding the same instance (an old process
// still running next to its replacement) trade the node at a damped pace
// instead of at network speed. Register, Deregister and a lost session act
// at once.
func (r *Registry) keep(g *registration) {
	defer r.wg.Done()
	b := backoff.Backoff{Max: r.cfg.MaxBackoff}
	fixBo := backoff.Backoff{Max: r.cfg.MaxBackoff}
	var (
		watch     <-chan gozk.Event // data watch on g.path, nil when none is set
		byWatch   bool              // this attempt answers the watch
		lastFix   time.Time         // when a watch-triggered attempt last repaired the node
		notBefore time.Time         // damping: no watch-triggered attempt before this
	)
	for {
		if !r.damp(g, notBefore) {
			return
		}
		notBefore = time.Time{}
		g.mu.Lock()
		gen, want, data := g.gen, g.want, g.data
		g.mu.Unlock()
		current := func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.gen == gen
		}
		var err error
		if want {
			var ch <-chan gozk.Event
			var repaired bool
			needWatch := watch == nil
			err = r.keeperCall(func() error {
				var err error
				ch, repaired, err = r.ensure(g.path, data, needWatch, current)
				return err
			})
			if err == nil && ch != nil {
				watch = ch
			}
			if err == nil && repaired && byWatch {
				lastFix = time.Now()
			}
		} else {
			err = r.keeperCall(func() error { return r.remove(g.path) })
		}
		byWatch = false
		if r.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errSuperseded) {
			continue // Register or Deregister changed g meanwhile: start over
		}
		if want && refused(err) && r.abandon(g, gen) {
			// A first write refused by the ACLs can never succeed as
			// configured: Register returns it (ErrInvalid) and nothing is
			// kept to be retried.
			r.finish(g, gen, want, err)
			return
		}
		r.finish(g, gen, want, err)
		// A delete refused by ZooKeeper (ErrNoAuth: not ours to delete) is
		// not retried: the registration is dropped with that error.
		if !want && (err == nil || !unavailable(err)) && r.retire(g, gen) {
			return
		}
		var retry *time.Timer
		var retryC <-chan time.Time
		if err != nil {
			d := b.Next()
			r.log.Warn("zookeeper: registration attempt failed", "path", g.path, "want", want, "attempt", b.Attempts(), "retry_in", d, "err", err)
			retry = time.NewTimer(d)
			retryC = retry.C
		} else {
			b.Reset()
		}
		select {
		case ev := <-watch:
			watch, byWatch = nil, true
			r.log.Debug("zookeeper: own node event", "path", g.path, "type", ev.Type, "state", ev.State, "err", ev.Err)
			if !lastFix.IsZero() && time.Since(lastFix) < 2*r.cfg.MaxBackoff {
				notBefore = time.Now().Add(fixBo.Next())
			} else {
				fixBo.Reset()
			}
		case <-g.kick:
		case <-retryC:
		case <-r.ctx.Done():
		}
		if retry != nil {
			retry.Stop()
		}
	}
}

// keeperCall runs a keeper's attempt f. Without a session it waits for one
// at most Config.Timeout and then fails the attempt (counted, shown by
// Registrations, retried with backoff or as soon as the session is back);
// once f has started it waits for f, which go-zookeeper ends when it answers
// or the connection drops: a keeper never runs two attempts at once.
func (r *Registry) keeperCall(f func() error) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	err := r.awaitSession(ctx)
	cancel()
	if err != nil {
		return err
	}
	return r.do(r.ctx, f)
}

// damp waits until notBefore unless g is kicked (Register, Deregister, a
// lost session act at once). It returns false when the Registry closes.
func (r *Registry) damp(g *registration, notBefore time.Time) bool {
	d := time.Until(notBefore)
	if d <= 0 {
		return r.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.kick:
	case <-r.ctx.Done():
		return false
	}
	return true
}

// finish records the outcome of g's attempt at generation gen.
func (r *Registry) finish(g *registration, gen uint64, want bool, err error) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tried, g.triedErr = gen, err
	close(g.changed)
	g.changed = make(chan struct{})
	if !want {
		return
	}
	if err != nil {
		g.attempts++
		g.lastErr = err
	} else {
		if !g.live && (g.everLive || g.attempts > 0) {
			r.log.Info("zookeeper: registration restored", "path", g.path, "failed_attempts", g.attempts)
		}
		g.attempts, g.lastErr, g.everLive = 0, nil, true
	}
	if live := err == nil; live != g.live {
		g.live, g.since = live, now
	}
}

// abandon removes g from the Registry when generation gen is still the
// one wanted and g's node was never written: a registration whose first
// write ZooKeeper refused. A registration that has been live keeps being
// retried (an ACL changed under a node that was ours), visible in
// Registrations.
func (r *Registry) abandon(g *registration, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen != gen || !g.want || g.everLive {
		return false
	}
	g.want = false
	delete(r.regs, g.key)
	return true
}

// retire removes g from the Registry if nothing re-registered it since the
// delete of generation gen; the keeper then exits.
func (r *Registry) retire(g *registration, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen != gen || g.want {
		return false
	}
	delete(r.regs, g.key)
	return true
}

// lost kicks every keeper to check its node at once. A non-nil cause means
// the session is gone, and with it the nodes: the registrations are marked
// not live until their keepers re-create them.
func (r *Registry) lost(cause error) {
	r.mu.Lock()
	regs := make([]*registration, 0, len(r.regs))
	for _, g := range r.regs {
		regs = append(regs, g)
	}
	r.mu.Unlock()
	now := time.Now()
	for _, g := range regs {
		g.mu.Lock()
		if cause != nil && g.want && g.live {
			g.live, g.since, g.lastErr = false, now, cause
		}
		g.mu.Unlock()
		g.poke()
	}
}

// maxEnsureSteps bounds the reads and writes of one ensure: more means
// someone keeps changing the node under us.
const maxEnsureSteps = 8

// errSuperseded ends an attempt whose registration changed (Register with
// new data, Deregister) while it waited: writing the old state now would
// put back a node that was just deregistered.
var errSuperseded = errors.New("registration changed during the attempt")

// ensure makes path an ephemeral node of the current session holding data.
// A node left by an earlier session (or written by another client) is
// deleted and re-created; foreign data is overwritten. Before each write it
// checks current and gives up with errSuperseded when that reports false.
// With watch, it returns a data watch set on the final state (it fires on
// change and on delete). repaired says whether it had to write anything.
func (r *Registry) ensure(path string, data []byte, watch bool, current func() bool) (ch <-chan gozk.Event, repaired bool, err error) {
	conn := r.zconn()
	for range maxEnsureSteps {
		var (
			got []byte
			st  *gozk.Stat
			err error
		)
		ch = nil
		if watch {
			r.watching()
			got, st, ch, err = conn.GetW(path)
		} else {
			got, st, err = conn.Get(path)
		}
		switch {
		case errors.Is(err, gozk.ErrNoNode):
			if !current() {
				return nil, repaired, errSuperseded
			}
			repaired = true
			if err := r.create(conn, path, data); err != nil {
				return nil, repaired, err
			}
			continue
		case err != nil:
			return nil, repaired, err
		}
		// Watches set on the way (GetW) fire on our own delete or set below
		// and are dropped by go-zookeeper then.
		if owner := conn.SessionID(); st.EphemeralOwner != owner {
			if !current() {
				return nil, repaired, errSuperseded
			}
			repaired = true
			r.log.Info("zookeeper: replacing node not owned by this session", "path", path, "owner", fmt.Sprintf("%#x", st.EphemeralOwner), "session", fmt.Sprintf("%#x", owner))
			if err := conn.Delete(path, st.Version); err != nil && !errors.Is(err, gozk.ErrNoNode) && !errors.Is(err, gozk.ErrBadVersion) {
				return nil, repaired, err
			}
			continue
		}
		if !bytes.Equal(got, data) {
			if !current() {
				return nil, repaired, errSuperseded
			}
			repaired = true
			if _, err := conn.Set(path, data, st.Version); err != nil && !errors.Is(err, gozk.ErrNoNode) && !errors.Is(err, gozk.ErrBadVersion) {
				return nil, repaired, err
			}
			continue
		}
		return ch, repaired, nil
	}
	return nil, repaired, fmt.Errorf("%s keeps changing under us (%d steps)", path, maxEnsureSteps)
}

// create creates path as an ephemeral node holding data, and its missing
// parents as persistent empty nodes. A node that already exists is not an
// error (ensure reads it back).
func (r *Registry) create(conn *gozk.Conn, path string, data []byte) error {
	_, err := conn.Create(path, data, gozk.FlagEphemeral, r.acl)
	if errors.Is(err, gozk.ErrNoNode) {
		if err := r.parents(conn, path); err != nil {
			return err
		}
		_, err = conn.Create(path, data, gozk.FlagEphemeral, r.acl)
	}
	if err != nil && !errors.Is(err, gozk.ErrNodeExists) {
		return err
	}
	return nil
}

// parents creates every missing ancestor of path as a persistent empty node,
// as Kratos' contrib registry does: the root and the service node with the
// Registry's ACL, the ancestors of the root (not ours: other applications
// may share them) world-writable.
func (r *Registry) parents(conn *gozk.Conn, path string) error {
	for i := 1; i < len(path); i++ {
		if path[i] != '/' {
			continue
		}
		acl := r.acl
		if i < len(r.root) {
			acl = gozk.WorldACL(gozk.PermAll)
		}
		_, err := conn.Create(path[:i], []byte{}, gozk.FlagPersistent, acl)
		if err != nil && !errors.Is(err, gozk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

// remove deletes path; a missing node is not an error. (ZooKeeper checks the
// parent's ACL before the node's existence: without DELETE permission a
// missing node would fail with ErrNoAuth, hence the Exists first.)
func (r *Registry) remove(path string) error {
	conn := r.zconn()
	if ok, _, err := conn.Exists(path); err != nil || !ok {
		return err
	}
	if err := conn.Delete(path, -1); err != nil && !errors.Is(err, gozk.ErrNoNode) {
		return err
	}
	return nil
}

// auth adds the digest credentials to the connection once: go-zookeeper
// re-sends them after every reconnect. Deferred to the first call (see do)
// so that New never waits for a server; reads need it too, for nodes that
// Kratos' contrib registry made readable only with the credentials.
func (r *Registry) auth(cs *connState) error {
	if r.cfg.Username == "" {
		return nil
	}
	cs.authMu.Lock()
	defer cs.authMu.Unlock()
	if cs.authed {
		return nil
	}
	if err := cs.conn.AddAuth("digest", []byte(r.cfg.Username+":"+r.cfg.Password)); err != nil {
		return fmt.Errorf("add digest auth: %w", err)
	}
	cs.authed = true
	return nil
}
