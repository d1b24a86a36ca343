package registrytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// HistoryHarness lets the kit change a real server's history under a registry.
type HistoryHarness struct {
	// New returns a registry connected to the server (closed by the kit).
	New func(t *testing.T) registry.Registry
	// Wipe stops the server, deletes all its data and starts it empty at the same address.
	Wipe func(t *testing.T)
	// Backup takes a backup now; the returned restore stops the server, restores that
	// backup (an older history) and starts it at the same address. Nil if unsupported.
	Backup func(t *testing.T) (restore func(t *testing.T))
	// Delete removes the record of (name, id) as another client would (an operator's delete).
	Delete func(t *testing.T, name, id string)
	// Recover bounds how long recovery may take (default 15 s).
	Recover time.Duration
}

// RunHistory holds a keepalive registry to what it must do when its server
// comes back with another history: wiped and started empty ("Wipe"), and
// restored from a backup taken earlier ("Restore", when h.Backup is set).
// After each, within h.Recover:
//
//   - every registration is re-created on the server, and defended again:
//     a record deleted by another client comes back;
//   - a record the new history lacks, registered by a registry that has
//     since been closed, is gone from what watchers deliver (they relist from
//     the new history), and a change made after recovery reaches them;
//   - Ping (when the registry is a registry.Pinger) succeeds again;
//   - when the registry is a registry.RegistrationReporter, every
//     registration ends Live, and every registration reported Live is held by
//     the server (checked with a fresh client).
//
// Each recovery time is logged with t.Log. The backend's TTL or session
// timeout must be well below h.Recover: the kit closes a second registry
// without deregistering and relies on the fault, not on expiry, to remove its
// record, but it does not wait for old records to expire either.
func RunHistory(t *testing.T, h HistoryHarness) {
	t.Helper()
	if h.Recover <= 0 {
		h.Recover = 15 * time.Second
	}
	run := randomToken()
	t.Run("Wipe", func(t *testing.T) {
		historyCase(t, h, "rh-"+run+"-wipe", nil, h.Wipe)
	})
	if h.Backup == nil {
		t.Log("RunHistory: no Backup in the harness; the Restore case does not apply")
		return
	}
	t.Run("Restore", func(t *testing.T) {
		var restore func(t *testing.T)
		historyCase(t, h, "rh-"+run+"-restore",
			func(t *testing.T) { restore = h.Backup(t) },
			func(t *testing.T) { restore(t) })
	})
}

// latest keeps the last state a watcher delivered per service.
type latest struct {
	mu     sync.Mutex // guards the fields below
	state  map[string][]*registry.Instance
	errs   int
	ended  error
	origin string
}

func follow(t *testing.T, w registry.Watcher, origin string) *latest {
	l := &latest{state: make(map[string][]*registry.Instance), origin: origin}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			if err != nil {
				if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
					l.mu.Lock()
					l.ended = err
					l.mu.Unlock()
					return
				}
				l.mu.Lock()
				l.errs++
				l.mu.Unlock()
				continue
			}
			l.mu.Lock()
			l.state[u.Service] = u.Instances
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		w.Stop()
		<-done
	})
	return l
}

// differs returns "" when the watcher's last state of svc equals want.
func (l *latest) differs(svc string, want []*registry.Instance) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended != nil {
		return fmt.Sprintf("%s watcher ended: %v", l.origin, l.ended)
	}
	got, ok := l.state[svc]
	if !ok && len(want) == 0 {
		return ""
	}
	if !ok {
		return fmt.Sprintf("%s watcher has no state of %s yet", l.origin, svc)
	}
	if !registry.EqualInstances(got, want) {
		return fmt.Sprintf("%s watcher: %s = %s, want %s", l.origin, svc, describe(got), describe(want))
	}
	return ""
}

// historyCase registers, watches, applies before (the backup), makes more
// changes, applies fault, and then checks recovery.
func historyCase(t *testing.T, h HistoryHarness, prefix string, before, fault func(t *testing.T)) {
	k := &kit{prefix: prefix}
	r := h.New(t)
	t.Cleanup(func() { r.Close() })
	other := h.New(t)
	otherClosed := false
	t.Cleanup(func() {
		if !otherClosed {
			other.Close()
		}
	})
	truth := h.New(t)
	t.Cleanup(func() { truth.Close() })
	k.r = truth

	svcA, svcB := k.service("a"), k.service("b")
	a1, a2, a3 := k.instance(svcA, "a1", 9000), k.instance(svcA, "a2", 9010), k.instance(svcA, "a3", 9020)
	b1 := k.instance(svcB, "b1", 9100)
	stray := k.instance(svcA, "a9", 9090)

	regOn := func(reg registry.Registry, in *registry.Instance) {
		t.Helper()
		if err := reg.Register(ctxT(t), in); err != nil {
			t.Fatalf("Register(%s): %v", in, err)
		}
	}
	regOn(r, a1)
	regOn(r, b1)
	k.waitInstances(t, svcA, a1)
	k.waitInstances(t, svcB, b1)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wa, err := r.Watch(ctx, svcA)
	if err != nil {
		t.Fatalf("Watch(%q): %v", svcA, err)
	}
	named := follow(t, wa, "Watch("+svcA+")")
	wall, err := r.Watch(ctx, "")
	if err != nil {
		t.Fatalf(`Watch(""): %v`, err)
	}
	all := follow(t, wall, `Watch("")`)

	if before != nil {
		before(t)
	}
	// After the backup: one more registration of r (the older history lacks
	// it), and a record of a registry that is then closed without
	// deregistering (the older history lacks it too; nobody re-creates it).
	regOn(r, a2)
	regOn(other, stray)
	k.waitInstances(t, svcA, a1, a2, stray)
	waitRecover(t, h, "watchers see the pre-fault state", func() string {
		if why := named.differs(svcA, []*registry.Instance{a1, a2, stray}); why != "" {
			return why
		}
		return all.differs(svcA, []*registry.Instance{a1, a2, stray})
	})
	otherClosed = true
	other.Close()

	fault(t)
	t0 := time.Now()

	// Recovery: each condition's first success is timed from t0.
	conds := []struct {
		name string
		fn   func() string
		at   time.Duration
	}{
		{name: "registrations re-created", fn: func() string {
			return serverHolds(t, truth, map[string][]*registry.Instance{svcA: {a1, a2}, svcB: {b1}})
		}},
		{name: "Ping", fn: func() string {
			p, ok := r.(registry.Pinger)
			if !ok {
				return ""
			}
			if err := p.Ping(ctxT(t)); err != nil {
				return "Ping: " + err.Error()
			}
			return ""
		}},
		{name: "watchers deliver the new history", fn: func() string {
			for _, l := range []*latest{named, all} {
				if why := l.differs(svcA, []*registry.Instance{a1, a2}); why != "" {
					return why
				}
			}
			return all.differs(svcB, []*registry.Instance{b1})
		}},
		{name: "Registrations Live and held", fn: func() string {
			return liveAgrees(t, r, truth, 3)
		}},
	}
	deadline := t0.Add(h.Recover)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for pending := len(conds); pending > 0; {
		for i := range conds {
			c := &conds[i]
			if c.at == 0 && c.fn() == "" {
				c.at = time.Since(t0)
				pending--
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range conds {
				if c.at == 0 {
					t.Errorf("after the fault, %s: not within %v: %s", c.name, h.Recover, c.fn())
				}
			}
			t.FailNow()
		}
		<-tick.C
	}
	for _, c := range conds {
		t.Logf("recovery: %s after %v", c.name, c.at.Round(time.Millisecond))
	}

	// A change made after recovery reaches the watchers.
	start := time.Now()
	regOn(r, a3)
	waitRecover(t, h, "watchers see a registration made after recovery", func() string {
		if why := named.differs(svcA, []*registry.Instance{a1, a2, a3}); why != "" {
			return why
		}
		return all.differs(svcA, []*registry.Instance{a1, a2, a3})
	})
	t.Logf("recovery: a registration made after recovery delivered to watchers in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := r.Deregister(ctxT(t), a1); err != nil {
		t.Fatalf("Deregister(%s): %v", a1, err)
	}
	waitRecover(t, h, "watchers see a deregistration made after recovery", func() string {
		if why := named.differs(svcA, []*registry.Instance{a2, a3}); why != "" {
			return why
		}
		return all.differs(svcA, []*registry.Instance{a2, a3})
	})
	t.Logf("recovery: a deregistration made after recovery delivered to watchers in %v", time.Since(start).Round(time.Millisecond))

	// Defended again: a re-created record and one the new history kept (or
	// re-created) come back after another client deletes them.
	for _, in := range []*registry.Instance{a2, b1} {
		start := time.Now()
		h.Delete(t, in.Name, in.ID)
		want := map[string][]*registry.Instance{svcA: {a2, a3}, svcB: {b1}}
		waitRecover(t, h, fmt.Sprintf("%s deleted by another client comes back", in), func() string {
			return serverHolds(t, truth, want)
		})
		t.Logf("recovery: %s deleted by another client back in %v", in, time.Since(start).Round(time.Millisecond))
	}
	waitRecover(t, h, "watchers agree with the server at the end", func() string {
		if why := named.differs(svcA, []*registry.Instance{a2, a3}); why != "" {
			return why
		}
		if why := all.differs(svcA, []*registry.Instance{a2, a3}); why != "" {
			return why
		}
		return all.differs(svcB, []*registry.Instance{b1})
	})
	waitRecover(t, h, "Registrations Live and held at the end", func() string {
		return liveAgrees(t, r, truth, 3)
	})
	named.mu.Lock()
	all.mu.Lock()
	t.Logf("transient watch errors: %d on the named watcher, %d on the watch-all", named.errs, all.errs)
	all.mu.Unlock()
	named.mu.Unlock()
}

func waitRecover(t *testing.T, h HistoryHarness, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(h.Recover)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v: %s", what, h.Recover, why)
		}
		<-tick.C
	}
}

// serverHolds returns "" when a fresh client reads exactly want for each
// service.
func serverHolds(t *testing.T, truth registry.Registry, want map[string][]*registry.Instance) string {
	for svc, w := range want {
		got, err := truth.GetService(ctxT(t), svc)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return fmt.Sprintf("server read %s: %v", svc, err)
		}
		if !registry.EqualInstances(got, w) {
			return fmt.Sprintf("server holds %s = %s, want %s", svc, describe(got), describe(w))
		}
	}
	return ""
}

// liveAgrees returns "" when r reports n registrations, all Live, and the
// server holds each of them as registered. A registry that does not report
// registrations agrees trivially.
func liveAgrees(t *testing.T, r, truth registry.Registry, n int) string {
	rr, ok := r.(registry.RegistrationReporter)
	if !ok {
		return ""
	}
	states := rr.Registrations()
	if len(states) != n {
		return fmt.Sprintf("Registrations() has %d entries, want %d", len(states), n)
	}
	// Read the server after taking the states: a Live state must be held by
	// the server now (nothing else deletes records during these checks).
	byService := make(map[string][]*registry.Instance)
	var live []string
	for _, s := range states {
		if !s.Live {
			return fmt.Sprintf("%s not Live yet (attempts %d, last error %v)", s.Instance, s.Attempts, s.LastError)
		}
		if _, ok := byService[s.Instance.Name]; !ok {
			got, err := truth.GetService(ctxT(t), s.Instance.Name)
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				return fmt.Sprintf("server read %s: %v", s.Instance.Name, err)
			}
			byService[s.Instance.Name] = got
		}
		i := slices.IndexFunc(byService[s.Instance.Name], func(in *registry.Instance) bool { return in.ID == s.Instance.ID })
		if i < 0 {
			live = append(live, s.Instance.String())
			continue
		}
		if !registry.EqualInstances([]*registry.Instance{byService[s.Instance.Name][i]}, []*registry.Instance{s.Instance}) {
			return fmt.Sprintf("server holds %s as %s, registered as %s", s.Instance,
				describe(byService[s.Instance.Name][i:i+1]), describe([]*registry.Instance{s.Instance}))
		}
	}
	if len(live) > 0 {
		return "reported Live but not held by the server: " + strings.Join(live, ", ")
	}
	return ""
}
