package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

// Timeout bounds every wait of the kit for a state to show up.
var Timeout = 30 * time.Second

// Run runs the conformance kit against the registries newRegistry returns,
// one per subtest. It closes each registry when its subtest ends.
func Run(t *testing.T, newRegistry func(t *testing.T) registry.Registry) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, k *kit)
	}{
		{"RoundTrip", testRoundTrip},
		{"ReRegister", testReRegister},
		{"NotFound", testNotFound},
		{"Invalid", testInvalid},
		{"WatchInitialEmpty", testWatchInitialEmpty},
		{"WatchInitialState", testWatchInitialState},
		{"WatchChanges", testWatchChanges},
		{"WatchAll", testWatchAll},
		{"WatchStop", testWatchStop},
		{"WatchNotify", testWatchNotify},
		{"WatchContextCancel", testWatchContextCancel},
		{"Concurrent", testConcurrent},
		{"Copies", testCopies},
		{"SharedRead", testSharedRead},
		{"Derive", testDerive},
		{"DeriveMemo", testDeriveMemo},
		{"RegisterTTL", testRegisterTTL},
		{"Close", testClose},
	}
	run := randomToken()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t)
			t.Cleanup(func() { r.Close() })
			tt.fn(t, &kit{r: r, prefix: "rt-" + run + "-" + strings.ToLower(tt.name)})
		})
	}
}

type kit struct {
	r      registry.Registry
	prefix string
}

func randomToken() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// service returns a service name unique to this run and subtest.
func (k *kit) service(s string) string { return k.prefix + "-" + s }

func (k *kit) instance(svc, id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:        id,
		Name:      svc,
		Version:   "v1.0.0",
		Metadata:  map[string]string{"weight": "10", "zone": "z1"},
		Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d?isSecure=false", port), fmt.Sprintf("http://127.0.0.1:%d", port+1)},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (k *kit) register(t *testing.T, in *registry.Instance) {
	t.Helper()
	if err := k.r.Register(ctxT(t), in); err != nil {
		t.Fatalf("Register(%s): %v", in, err)
	}
}

// registerAll registers ins, all of service svc, and waits until
// GetService returns them.
func (k *kit) registerAll(t *testing.T, svc string, ins ...*registry.Instance) {
	t.Helper()
	for _, in := range ins {
		k.register(t, in)
	}
	k.waitInstances(t, svc, ins...)
}

func (k *kit) deregister(t *testing.T, in *registry.Instance) {
	t.Helper()
	if err := k.r.Deregister(ctxT(t), in); err != nil {
		t.Fatalf("Deregister(%s): %v", in, err)
	}
}

// eventually polls cond until it returns "" or Timeout passes; then it fails
// with the last reason. It waits on a condition, never a fixed sleep.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v: %s", what, Timeout, why)
		}
		<-tick.C
	}
}

// waitInstances waits until GetService returns want (nil/empty: ErrNotFound).
func (k *kit) waitInstances(t *testing.T, svc string, want ...*registry.Instance) {
	t.Helper()
	eventually(t, "GetService("+svc+")", func() string {
		got, err := k.r.GetService(ctxT(t), svc)
		if len(want) == 0 {
			if errors.Is(err, registry.ErrNotFound) {
				return ""
			}
			return fmt.Sprintf("got %v, %v; want ErrNotFound", got, err)
		}
		if err != nil {
			return fmt.Sprintf("error %v", err)
		}
		if !slices.IsSortedFunc(got, func(a, b *registry.Instance) int { return strings.Compare(a.ID, b.ID) }) {
			return fmt.Sprintf("got %v, not sorted by ID", got)
		}
		if !registry.EqualInstances(got, want) {
			return fmt.Sprintf("got %v, want %v", describe(got), describe(want))
		}
		return ""
	})
}

func describe(s []*registry.Instance) string {
	parts := make([]string, len(s))
	for i, in := range s {
		keys := slices.Sorted(maps.Keys(in.Metadata))
		var md []string
		for _, k := range keys {
			md = append(md, k+"="+in.Metadata[k])
		}
		parts[i] = fmt.Sprintf("%s{%v %v}", in, in.Endpoints, md)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// nexter reads a watcher with a deadline on each Next.
type nexter struct {
	t    *testing.T
	w    registry.Watcher
	all  bool // a watch-all
	prev map[string]*registry.Update
}

func newNexter(t *testing.T, w registry.Watcher) *nexter {
	t.Cleanup(func() { w.Stop() })
	return &nexter{t: t, w: w, prev: make(map[string]*registry.Update)}
}

type nextResult struct {
	u   *registry.Update
	err error
}

// next calls Next with a deadline; it fails the test on timeout. Transient
// errors are returned to the caller.
func (n *nexter) next() (*registry.Update, error) {
	n.t.Helper()
	ch := make(chan nextResult, 1)
	go func() {
		u, err := n.w.Next()
		ch <- nextResult{u, err}
	}()
	select {
	case r := <-ch:
		if r.err == nil {
			n.check(r.u)
		}
		return r.u, r.err
	case <-time.After(Timeout):
		n.w.Stop()
		<-ch
		n.t.Fatalf("Next did not return within %v", Timeout)
		return nil, nil
	}
}

// check holds every update to the contract: sorted, complete, not a
// duplicate of the previous state of its service.
func (n *nexter) check(u *registry.Update) {
	n.t.Helper()
	if u == nil {
		n.t.Fatalf("Next returned a nil Update and no error")
	}
	if u.Source == "" {
		n.t.Errorf("Update for %q has no Source", u.Service)
	}
	if u.Time.IsZero() {
		n.t.Errorf("Update for %q has a zero Time", u.Service)
	}
	for _, in := range u.Instances {
		if in.Name != u.Service {
			n.t.Errorf("Update for %q holds instance %s of another service", u.Service, in)
		}
	}
	if !slices.IsSortedFunc(u.Instances, func(a, b *registry.Instance) int { return strings.Compare(a.ID, b.ID) }) {
		n.t.Errorf("Update for %q not sorted by ID: %s", u.Service, describe(u.Instances))
	}
	if n.all && n.prev[u.Service] == nil && len(u.Instances) == 0 {
		n.t.Errorf("watch-all announced %q empty before it had instances", u.Service)
	}
	if p := n.prev[u.Service]; p != nil && p.SameState(u) {
		n.t.Errorf("Update for %q repeats the previous state %s", u.Service, describe(u.Instances))
	}
	n.prev[u.Service] = u.Clone()
}

// until reads updates until one for svc satisfies want; transient errors
// are tolerated (logged). It fails on a terminal error or the deadline.
func (n *nexter) until(svc string, want ...*registry.Instance) *registry.Update {
	n.t.Helper()
	deadline := time.Now().Add(Timeout)
	var last *registry.Update
	for time.Now().Before(deadline) {
		u, err := n.next()
		if err != nil {
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				n.t.Fatalf("waiting for %s = %s: watcher ended: %v", svc, describe(want), err)
			}
			n.t.Logf("transient watch error: %v", err)
			continue
		}
		if u.Service != svc {
			continue
		}
		last = u
		if registry.EqualInstances(u.Instances, want) {
			return u
		}
	}
	got := "nothing"
	if last != nil {
		got = describe(last.Instances)
	}
	n.t.Fatalf("watch %s: want %s, last got %s", svc, describe(want), got)
	return nil
}

func testRoundTrip(t *testing.T, k *kit) {
	svc := k.service("a")
	a1, a2 := k.instance(svc, "a1", 9000), k.instance(svc, "a2", 9010)
	a2.Endpoints = []string{"grpc://127.0.0.1:9010", "grpc://127.0.0.1:9011", "http://[::1]:8080/path?x=1"}
	a2.Metadata = map[string]string{"weight": "100", "unicode": "ünï çødé", "empty": "", "json": `{"a":[1,2]}`}
	k.registerAll(t, svc, a1, a2)

	names, err := k.r.ListServices(ctxT(t))
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	if !slices.Contains(names, svc) {
		t.Errorf("ListServices = %v, want it to contain %q", names, svc)
	}
	if !slices.IsSorted(names) {
		t.Errorf("ListServices = %v, not sorted", names)
	}

	k.deregister(t, &registry.Instance{Name: svc, ID: "a1"}) // Name and ID suffice
	k.waitInstances(t, svc, a2)
	k.deregister(t, a2)
	k.waitInstances(t, svc)
	eventually(t, "ListServices without "+svc, func() string {
		names, err := k.r.ListServices(ctxT(t))
		if err != nil {
			return err.Error()
		}
		if slices.Contains(names, svc) {
			return fmt.Sprintf("ListServices = %v still has %q", names, svc)
		}
		return ""
	})
	// Deregistering what is not there is not an error.
	k.deregister(t, a2)
	k.deregister(t, k.instance(k.service("never"), "x", 1))
}

func testReRegister(t *testing.T, k *kit) {
	svc := k.service("b")
	b1 := k.instance(svc, "b1", 9100)
	k.register(t, b1)
	k.register(t, b1.Clone())
	k.waitInstances(t, svc, b1)

	upd := b1.Clone()
	upd.Version = "v2.0.0"
	upd.Metadata = map[string]string{"weight": "50", "new": "yes"}
	upd.Endpoints = []string{"grpc://127.0.0.2:9200"}
	k.register(t, upd)
	k.waitInstances(t, svc, upd)

	got, err := k.r.GetService(ctxT(t), svc)
	if err != nil || len(got) != 1 {
		t.Fatalf("after update: GetService = %v, %v; want exactly one instance", describe(got), err)
	}
}

func testNotFound(t *testing.T, k *kit) {
	_, err := k.r.GetService(ctxT(t), k.service("missing"))
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetService(missing) error = %v, want ErrNotFound", err)
	}
	// A service whose name extends another's is not part of it.
	long := k.service("foo") + "bar"
	k.register(t, k.instance(long, "fb1", 9300))
	k.waitInstances(t, long, k.instance(long, "fb1", 9300))
	if got, err := k.r.GetService(ctxT(t), k.service("foo")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetService(foo) with only foobar registered = %v, %v; want ErrNotFound", describe(got), err)
	}
}

func testInvalid(t *testing.T, k *kit) {
	svc := k.service("inv")
	good := func() *registry.Instance { return k.instance(svc, "ok", 9400) }
	mod := func(f func(*registry.Instance)) *registry.Instance { in := good(); f(in); return in }
	bigMeta := map[string]string{}
	for i := 0; i < 300; i++ {
		bigMeta[fmt.Sprintf("k%03d", i)] = strings.Repeat("v", 1024)
	}
	cases := []struct {
		name string
		in   *registry.Instance
	}{
		{"nil", nil},
		{"empty name", mod(func(in *registry.Instance) { in.Name = "" })},
		{"slash in name", mod(func(in *registry.Instance) { in.Name = svc + "/x" })},
		{"space in name", mod(func(in *registry.Instance) { in.Name = "a b" })},
		{"dotdot name", mod(func(in *registry.Instance) { in.Name = ".." })},
		{"long name", mod(func(in *registry.Instance) { in.Name = strings.Repeat("n", registry.MaxNameLen+1) })},
		{"empty id", mod(func(in *registry.Instance) { in.ID = "" })},
		{"slash in id", mod(func(in *registry.Instance) { in.ID = "a/b" })},
		{"long id", mod(func(in *registry.Instance) { in.ID = strings.Repeat("i", registry.MaxIDLen+1) })},
		{"no endpoints", mod(func(in *registry.Instance) { in.Endpoints = nil })},
		{"endpoint without scheme", mod(func(in *registry.Instance) { in.Endpoints = []string{"127.0.0.1:9000"} })},
		{"endpoint without host", mod(func(in *registry.Instance) { in.Endpoints = []string{"grpc://"} })},
		{"endpoint garbage", mod(func(in *registry.Instance) { in.Endpoints = []string{"::%zz"} })},
		{"oversized metadata", mod(func(in *registry.Instance) { in.Metadata = bigMeta })},
		{"empty metadata key", mod(func(in *registry.Instance) { in.Metadata = map[string]string{"": "x"} })},
		{"control char in version", mod(func(in *registry.Instance) { in.Version = "v1\n" })},
	}
	v, validates := k.r.(registry.Validator)
	for _, c := range cases {
		if validates && c.in != nil {
			// A registry that says what it refuses says it before writing:
			// its ValidateInstance agrees with its Register.
			if err := v.ValidateInstance(c.in); !errors.Is(err, registry.ErrInvalid) {
				t.Errorf("ValidateInstance(%s) error = %v, want ErrInvalid", c.name, err)
			}
		}
		err := k.r.Register(ctxT(t), c.in)
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Register(%s) error = %v, want ErrInvalid", c.name, err)
		} else if err.Error() == registry.ErrInvalid.Error() {
			t.Errorf("Register(%s) error %q does not say what is wrong", c.name, err)
		}
	}
	// Nothing was written: the valid-named service has no instances.
	if got, err := k.r.GetService(ctxT(t), svc); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("after invalid registers: GetService = %v, %v; want ErrNotFound", describe(got), err)
	}
	for _, name := range []string{"", "a/b", "a b", "../x"} {
		if _, err := k.r.GetService(ctxT(t), name); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("GetService(%q) error = %v, want ErrInvalid", name, err)
		}
	}
	if w, err := k.r.Watch(ctxT(t), "a/b"); !errors.Is(err, registry.ErrInvalid) {
		if w != nil {
			w.Stop()
		}
		t.Errorf("Watch(%q) error = %v, want ErrInvalid", "a/b", err)
	}
	if err := k.r.Deregister(ctxT(t), &registry.Instance{Name: "a/b", ID: "x"}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Deregister(bad name) error = %v, want ErrInvalid", err)
	}
	if validates {
		if err := v.ValidateInstance(good()); err != nil {
			t.Errorf("ValidateInstance(valid instance) = %v, want nil", err)
		}
	}
	// The registry still works.
	k.register(t, good())
	k.waitInstances(t, svc, good())
}

func (k *kit) watch(t *testing.T, svc string) *nexter {
	t.Helper()
	start := time.Now()
	w, err := k.r.Watch(ctxT(t), svc)
	if err != nil {
		t.Fatalf("Watch(%q): %v", svc, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Watch(%q) took %v; it must return at once", svc, d)
	}
	n := newNexter(t, w)
	n.all = svc == ""
	return n
}

// first returns the first Update of a single-service watcher, skipping
// transient errors.
func (n *nexter) first(svc string) *registry.Update {
	n.t.Helper()
	for {
		u, err := n.next()
		if err != nil {
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				n.t.Fatalf("first Next: %v", err)
			}
			n.t.Logf("transient watch error: %v", err)
			continue
		}
		if u.Service != svc {
			n.t.Fatalf("first Next: Update for %q, want %q", u.Service, svc)
		}
		return u
	}
}

func testWatchInitialEmpty(t *testing.T, k *kit) {
	svc := k.service("empty")
	n := k.watch(t, svc)
	if u := n.first(svc); len(u.Instances) != 0 {
		t.Errorf("first Next on an unknown service = %s, want no instances", describe(u.Instances))
	}
}

func testWatchInitialState(t *testing.T, k *kit) {
	svc := k.service("init")
	c1, c2 := k.instance(svc, "c1", 9500), k.instance(svc, "c2", 9510)
	k.registerAll(t, svc, c1, c2)
	n := k.watch(t, svc)
	if u := n.first(svc); !registry.EqualInstances(u.Instances, []*registry.Instance{c1, c2}) {
		t.Errorf("first Next = %s, want %s", describe(u.Instances), describe([]*registry.Instance{c1, c2}))
	}
}

func testWatchChanges(t *testing.T, k *kit) {
	svc := k.service("chg")
	n := k.watch(t, svc)
	n.first(svc)
	d1, d2 := k.instance(svc, "d1", 9600), k.instance(svc, "d2", 9610)
	k.register(t, d1)
	n.until(svc, d1)
	// An identical re-register is not a new state; the next one must be {d1, d2}.
	k.register(t, d1.Clone())
	k.register(t, d2)
	n.until(svc, d1, d2)
	d2b := d2.Clone()
	d2b.Metadata["weight"] = "99"
	k.register(t, d2b)
	n.until(svc, d1, d2b)
	k.deregister(t, d1)
	n.until(svc, d2b)
	k.deregister(t, d2b)
	n.until(svc) // the last instance going away is seen as an empty set
}

func testWatchAll(t *testing.T, k *kit) {
	s1, s2 := k.service("all1"), k.service("all2")
	e1 := k.instance(s1, "e1", 9700)
	k.register(t, e1)
	k.waitInstances(t, s1, e1)
	n := k.watch(t, "")
	n.until(s1, e1) // existing services come first
	e2 := k.instance(s2, "e2", 9710)
	k.register(t, e2)
	u := n.until(s2, e2)
	if u.Service != s2 {
		t.Errorf("watch-all Update.Service = %q, want %q", u.Service, s2)
	}
	k.deregister(t, e1)
	n.until(s1)
}

func testWatchStop(t *testing.T, k *kit) {
	svc := k.service("stop")
	n := k.watch(t, svc)
	n.first(svc)
	ch := make(chan error, 1)
	go func() {
		_, err := n.w.Next()
		ch <- err
	}()
	if err := n.w.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	select {
	case err := <-ch:
		if !errors.Is(err, registry.ErrStopped) {
			t.Errorf("Next after Stop = %v, want ErrStopped", err)
		}
	case <-time.After(Timeout):
		t.Fatalf("Stop did not unblock Next within %v", Timeout)
	}
	if _, err := n.w.Next(); !errors.Is(err, registry.ErrStopped) {
		t.Errorf("second Next after Stop = %v, want ErrStopped", err)
	}
	if err := n.w.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// A new watcher on the same service works after the old one stopped.
	k.register(t, k.instance(svc, "s1", 9800))
	n2 := k.watch(t, svc)
	n2.until(svc, k.instance(svc, "s1", 9800))
}

func testWatchContextCancel(t *testing.T, k *kit) {
	svc := k.service("ctx")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := k.r.Watch(ctx, svc)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	n := newNexter(t, w)
	n.first(svc)
	ch := make(chan error, 1)
	go func() {
		_, err := w.Next()
		ch <- err
	}()
	cancel()
	select {
	case err := <-ch:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, registry.ErrStopped) {
			t.Errorf("Next after ctx cancel = %v, want an error matching context.Canceled and ErrStopped", err)
		}
	case <-time.After(Timeout):
		t.Fatalf("ctx cancel did not unblock Next within %v", Timeout)
	}

	// A watch started with a ctx that is already done ends at once.
	k.register(t, k.instance(svc, "h1", 9970))
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	w2, err := k.r.Watch(done, svc)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch(done ctx) error = %v, want nil or context.Canceled", err)
		}
		return
	}
	defer w2.Stop()
	go func() {
		_, err := w2.Next()
		ch <- err
	}()
	select {
	case err := <-ch:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, registry.ErrStopped) {
			t.Errorf("Next on a watcher whose ctx was done = %v, want an error matching context.Canceled and ErrStopped", err)
		}
	case <-time.After(Timeout):
		t.Fatalf("Next on a watcher whose ctx was done did not return within %v", Timeout)
	}
}

func testConcurrent(t *testing.T, k *kit) {
	const workers, per = 8, 4
	shared := k.service("shared")
	var want []*registry.Instance
	var wg sync.WaitGroup
	errs := make(chan error, workers*per*4)
	for w := range workers {
		own := k.service(fmt.Sprintf("own%d", w))
		for i := range per {
			want = append(want, k.instance(shared, fmt.Sprintf("w%d-%d", w, i), 10000+w*100+i*2))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctxT(t)
			wt, err := k.r.Watch(ctx, shared)
			if err != nil {
				errs <- fmt.Errorf("Watch: %w", err)
				return
			}
			defer wt.Stop()
			if _, err := wt.Next(); err != nil {
				errs <- fmt.Errorf("first Next: %w", err)
			}
			for i := range per {
				in := k.instance(shared, fmt.Sprintf("w%d-%d", w, i), 10000+w*100+i*2)
				if err := k.r.Register(ctx, in); err != nil {
					errs <- fmt.Errorf("Register %s: %w", in, err)
				}
				mine := k.instance(own, fmt.Sprintf("o%d", i), 20000+i*2)
				if err := k.r.Register(ctx, mine); err != nil {
					errs <- fmt.Errorf("Register %s: %w", mine, err)
				}
				if _, err := k.r.GetService(ctx, shared); err != nil && !errors.Is(err, registry.ErrNotFound) {
					errs <- fmt.Errorf("GetService: %w", err)
				}
				if _, err := k.r.ListServices(ctx); err != nil {
					errs <- fmt.Errorf("ListServices: %w", err)
				}
			}
			if err := k.r.Deregister(ctx, &registry.Instance{Name: own, ID: "o0"}); err != nil {
				errs <- fmt.Errorf("Deregister: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	k.waitInstances(t, shared, want...)
	n := k.watch(t, shared)
	n.until(shared, want...)
	for w := range workers {
		own := k.service(fmt.Sprintf("own%d", w))
		var rest []*registry.Instance
		for i := 1; i < per; i++ {
			rest = append(rest, k.instance(own, fmt.Sprintf("o%d", i), 20000+i*2))
		}
		k.waitInstances(t, own, rest...)
	}
}

func testCopies(t *testing.T, k *kit) {
	svc := k.service("copy")
	in := k.instance(svc, "f1", 9900)
	orig := in.Clone()
	k.register(t, in)
	// Mutating what was passed to Register changes nothing.
	in.Metadata["weight"] = "mutated"
	in.Endpoints[0] = "grpc://10.9.9.9:1"
	in.Version = "mutated"
	k.waitInstances(t, svc, orig)

	got, err := k.r.GetService(ctxT(t), svc)
	if err != nil {
		t.Fatalf("GetService: %v", err)
	}
	got[0].Metadata["weight"] = "mutated"
	got[0].Endpoints[0] = "grpc://10.9.9.9:1"
	got[0].ID = "mutated"
	got[0] = nil
	k.waitInstances(t, svc, orig)

	n := k.watch(t, svc)
	u := n.first(svc)
	u.Instances[0].Metadata["weight"] = "mutated"
	u.Instances[0].Endpoints[0] = "grpc://10.9.9.9:1"
	u.Instances = nil
	k.waitInstances(t, svc, orig)
	n2 := k.watch(t, svc)
	if u2 := n2.first(svc); !registry.EqualInstances(u2.Instances, []*registry.Instance{orig}) {
		t.Errorf("another watcher after mutating an Update got %s, want %s", describe(u2.Instances), describe([]*registry.Instance{orig}))
	}
	names, err := k.r.ListServices(ctxT(t))
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	for i := range names {
		names[i] = "mutated"
	}
	names2, err := k.r.ListServices(ctxT(t))
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	if !slices.Contains(names2, svc) {
		t.Errorf("ListServices after mutating its result = %v, want it to contain %q", names2, svc)
	}
}

func testClose(t *testing.T, k *kit) {
	svc := k.service("close")
	g1 := k.instance(svc, "g1", 9950)
	k.register(t, g1)
	k.waitInstances(t, svc, g1)
	n := k.watch(t, svc)
	n.first(svc)
	ch := make(chan error, 1)
	go func() {
		_, err := n.w.Next()
		ch <- err
	}()
	if err := k.r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-ch:
		if !errors.Is(err, registry.ErrClosed) || !errors.Is(err, registry.ErrStopped) {
			t.Errorf("Next after Close = %v, want an error matching ErrClosed and ErrStopped", err)
		}
	case <-time.After(Timeout):
		t.Fatalf("Close did not unblock Next within %v", Timeout)
	}
	ctx := ctxT(t)
	checks := map[string]error{}
	checks["Register"] = k.r.Register(ctx, k.instance(svc, "g2", 9960))
	checks["Deregister"] = k.r.Deregister(ctx, g1)
	_, checks["GetService"] = k.r.GetService(ctx, svc)
	_, checks["ListServices"] = k.r.ListServices(ctx)
	w, err := k.r.Watch(ctx, svc)
	checks["Watch"] = err
	if w != nil {
		w.Stop()
	}
	if p, ok := k.r.(registry.Pinger); ok {
		checks["Ping"] = p.Ping(ctx)
	}
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		if !errors.Is(checks[name], registry.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, checks[name])
		}
	}
	if err := k.r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testSharedRead holds registry.GetServiceShared (a SharedReader, or the
// GetService fallback) to its promise: the same answer as GetService, a
// slice of the caller's own, and Instances that never change afterwards.
func testSharedRead(t *testing.T, k *kit) {
	svc := k.service("shared")
	i1, i2 := k.instance(svc, "i1", 9980), k.instance(svc, "i2", 9990)
	k.registerAll(t, svc, i1, i2)
	if _, ok := k.r.(registry.SharedReader); !ok {
		t.Logf("%T has no SharedReader: checking the GetService fallback", k.r)
	}
	var old []*registry.Instance
	eventually(t, "GetServiceShared("+svc+")", func() string {
		got, err := registry.GetServiceShared(ctxT(t), k.r, svc)
		if err != nil {
			return err.Error()
		}
		if !registry.EqualInstances(got, []*registry.Instance{i1, i2}) {
			return fmt.Sprintf("got %s, want %s", describe(got), describe([]*registry.Instance{i1, i2}))
		}
		old = got
		return ""
	})
	held := slices.Clone(old)              // the shared Instances themselves
	before := registry.CloneInstances(old) // what they held when returned
	old[0], old[1] = nil, nil              // the slice is the caller's

	i1b := i1.Clone()
	i1b.Metadata["weight"] = "77"
	i1b.Endpoints = []string{"grpc://127.0.0.3:9981"}
	k.register(t, i1b)
	k.waitInstances(t, svc, i1b, i2)
	eventually(t, "GetServiceShared sees the update", func() string {
		got, err := registry.GetServiceShared(ctxT(t), k.r, svc)
		if err != nil {
			return err.Error()
		}
		if !registry.EqualInstances(got, []*registry.Instance{i1b, i2}) {
			return fmt.Sprintf("got %s", describe(got))
		}
		return ""
	})
	// Instances handed out earlier did not change with the new state.
	for i, in := range held {
		if !in.Equal(before[i]) {
			t.Errorf("shared instance %s changed after a re-register: now %s, was %s", in, describe([]*registry.Instance{in}), describe(before[i:i+1]))
		}
	}
	if _, err := registry.GetServiceShared(ctxT(t), k.r, k.service("none")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetServiceShared(unknown) error = %v, want ErrNotFound", err)
	}
}
