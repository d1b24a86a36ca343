package chain_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/regchain/regchain/internal/testsupport/testutil"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// inst returns a valid instance of svc.
func inst(svc, id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:        id,
		Name:      svc,
		Version:   "v1",
		Metadata:  map[string]string{"zone": "z1"},
		Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", port)},
	}
}

func ids(s []*registry.Instance) []string {
	out := make([]string, len(s))
	for i, in := range s {
		out[i] = in.ID
	}
	return out
}

// memTiers returns n Memory tiers named tier1..tiern and the chain's Tier
// list over them.
func memTiers(n int) ([]*registrytest.Memory, []chain.Tier) {
	mems := make([]*registrytest.Memory, n)
	tiers := make([]chain.Tier, n)
	for i := range n {
		name := fmt.Sprintf("tier%d", i+1)
		mems[i] = registrytest.NewMemoryNamed("mem-" + name)
		tiers[i] = chain.Tier{Name: name, Registry: mems[i]}
	}
	return mems, tiers
}

// newChain returns a chain over tiers with a quiet logger, closed when
// the test ends (inside its synctest bubble, if any).
func newChain(t *testing.T, tiers []chain.Tier, opts ...chain.Option) *chain.Chain {
	t.Helper()
	c, err := chain.New(tiers, append([]chain.Option{chain.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// memChain returns n Memory tiers (see memTiers) and a chain over them
// (see newChain).
func memChain(t *testing.T, n int, opts ...chain.Option) ([]*registrytest.Memory, *chain.Chain) {
	t.Helper()
	mems, tiers := memTiers(n)
	return mems, newChain(t, tiers, opts...)
}

// pump reads a watcher into a channel, so that synctest tests can look at
// what was delivered after synctest.Wait without blocking.
type pump struct {
	w  registry.Watcher
	ch chan pumped
}

type pumped struct {
	u   *registry.Update
	err error
}

// startPump starts a pump of a watcher of name, stopped when the test
// ends.
func startPump(t *testing.T, r registry.Registry, name string) *pump {
	t.Helper()
	w, err := r.Watch(context.Background(), name)
	if err != nil {
		t.Fatalf("Watch(%q): %v", name, err)
	}
	t.Cleanup(func() { w.Stop() })
	p := &pump{w: w, ch: make(chan pumped, 10000)}
	go func() {
		for {
			u, err := w.Next()
			p.ch <- pumped{u, err}
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
		}
	}()
	return p
}

// drain returns the updates delivered so far (errors are skipped).
func (p *pump) drain() []*registry.Update {
	var out []*registry.Update
	for {
		select {
		case r := <-p.ch:
			if r.err == nil {
				out = append(out, r.u)
			}
		default:
			return out
		}
	}
}

// expect drains and checks that the last update delivered has the given
// source and instance IDs.
func (p *pump) expect(t *testing.T, source string, wantIDs ...string) []*registry.Update {
	t.Helper()
	got := p.drain()
	if len(got) == 0 {
		t.Fatalf("no update delivered; want source %s %v", source, wantIDs)
	}
	last := got[len(got)-1]
	if last.Source != source || fmt.Sprint(ids(last.Instances)) != fmt.Sprint(wantIDs) {
		t.Fatalf("last update = %s %v; want %s %v (all: %s)", last.Source, ids(last.Instances), source, wantIDs, describeUpdates(got))
	}
	return got
}

func describeUpdates(us []*registry.Update) string {
	s := ""
	for _, u := range us {
		s += fmt.Sprintf("[%s %v] ", u.Source, ids(u.Instances))
	}
	return s
}

// mustGet checks that GetService answers with wantIDs (none: ErrNotFound).
func mustGet(t *testing.T, r registry.Registry, svc string, wantIDs ...string) {
	t.Helper()
	got, err := r.GetService(context.Background(), svc)
	if len(wantIDs) == 0 {
		if !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("GetService(%s) = %v, %v; want ErrNotFound", svc, ids(got), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("GetService(%s): %v", svc, err)
	}
	if fmt.Sprint(ids(got)) != fmt.Sprint(wantIDs) {
		t.Fatalf("GetService(%s) = %v, want %v", svc, ids(got), wantIDs)
	}
}

func tierStatus(c *chain.Chain, name string) chain.TierStatus {
	for _, ts := range c.Status().Tiers {
		if ts.Name == name {
			return ts
		}
	}
	return chain.TierStatus{}
}

func serviceStatus(c *chain.Chain, name string) chain.ServiceStatus {
	for _, ss := range c.Status().Services {
		if ss.Name == name {
			return ss
		}
	}
	return chain.ServiceStatus{}
}

// recorder is a slog.Handler that keeps the messages and attributes logged.
type recorder struct {
	mu   sync.Mutex
	logs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	s := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		s += " " + a.Key + "=" + a.Value.String()
		return true
	})
	r.mu.Lock()
	r.logs = append(r.logs, s)
	r.mu.Unlock()
	return nil
}

func (r *recorder) has(sub ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		ok := true
		for _, s := range sub {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// gather returns the metrics of the family name from reg, nil when absent.
func gather(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func waitLevel(t *testing.T, c *chain.Chain, want chain.Level) chain.Degradation {
	t.Helper()
	var d chain.Degradation
	testutil.WaitFor(t, testutil.Timeout(t), "level "+want.String(), func() string {
		d = c.Status().Degradation
		if d.Level != want {
			return "level " + d.Level.String() + " " + strings.Join(d.Reasons, "; ")
		}
		return ""
	})
	return d
}
