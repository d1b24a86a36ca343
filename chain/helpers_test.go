package chain_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

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

func newChain(t *testing.T, tiers []chain.Tier, opts ...chain.Option) *chain.Chain {
	t.Helper()
	c, err := chain.New(tiers, append([]chain.Option{chain.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
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

func startPump(t *testing.T, r registry.Registry, name string) *pump {
	t.Helper()
	w, err := r.Watch(context.Background(), name)
	if err != nil {
		t.Fatalf("Watch(%q): %v", name, err)
	}
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
