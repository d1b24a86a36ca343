package chain_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// slowWrites is a tier whose writes take a different time each, so that
// concurrent writes of one instance overlap and could land out of order.
type slowWrites struct {
	*registrytest.Memory
	n atomic.Int64
}

func (s *slowWrites) lag(ctx context.Context) error {
	d := time.Duration(s.n.Add(1)*7%23) * time.Millisecond
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowWrites) Register(ctx context.Context, in *registry.Instance) error {
	if err := s.lag(ctx); err != nil {
		return err
	}
	return s.Memory.Register(ctx, in)
}

func (s *slowWrites) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := s.lag(ctx); err != nil {
		return err
	}
	return s.Memory.Deregister(ctx, in)
}

// TestConcurrentWritesFinalState: many goroutines register and deregister
// the same instances concurrently, with writes of varying latency and one
// tier going down and up meanwhile; once things settle, every tier holds
// exactly what the chain's desired set says, without any re-statement.
func TestConcurrentWritesFinalState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		w1 := &slowWrites{Memory: registrytest.NewMemoryNamed("m1")}
		w2 := &slowWrites{Memory: registrytest.NewMemoryNamed("m2")}
		c := newChain(t, []chain.Tier{{Name: "tier1", Registry: w1}, {Name: "tier2", Registry: w2}}, fastHealth...)
		defer c.Close()
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 12 {
					in := inst("svc", fmt.Sprintf("x%d", (i+j)%3), 9000+j)
					if (i*7+j)%3 == 0 {
						c.Deregister(ctx, in)
					} else {
						c.Register(ctx, in)
					}
					time.Sleep(time.Duration(i%5) * 3 * time.Millisecond)
				}
			}()
		}
		time.Sleep(40 * time.Millisecond)
		w2.SetAvailable(false)
		time.Sleep(3 * time.Second)
		w2.SetAvailable(true)
		wg.Wait()
		time.Sleep(10 * time.Second)
		synctest.Wait()

		want := map[string]*registry.Instance{}
		for _, r := range c.Registrations() {
			if !r.Live {
				t.Errorf("registration %s not live after settling: %v", r.Instance, r.LastError)
			}
			want[r.Instance.ID] = r.Instance
		}
		for _, m := range []*registrytest.Memory{w1.Memory, w2.Memory} {
			got, err := m.GetService(ctx, "svc")
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("tier holds %v, the desired set %v", got, want)
				continue
			}
			for _, in := range got {
				if w := want[in.ID]; w == nil || !w.Equal(in) {
					t.Errorf("tier holds %v, the desired set %v", in, w)
				}
			}
		}
		if n := c.Status().PendingRegistrations; n != 0 {
			t.Errorf("%d pending after settling", n)
		}
	})
}

// hang is a tier whose writes never answer: they return only when their
// ctx is done.
type hang struct{ *registrytest.Memory }

func (h hang) Register(ctx context.Context, in *registry.Instance) error {
	<-ctx.Done()
	return ctx.Err()
}

func (h hang) Deregister(ctx context.Context, in *registry.Instance) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestRegisterHangingTiers: with every tier up as far as the probes know
// but no write answering, Register and Deregister return within their ctx
// and the registration stays pending.
func TestRegisterHangingTiers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newChain(t, []chain.Tier{
			{Name: "tier1", Registry: hang{registrytest.NewMemoryNamed("m1")}},
			{Name: "tier2", Registry: hang{registrytest.NewMemoryNamed("m2")}},
		}, chain.WithFailureThreshold(1000), chain.WithCallTimeout(time.Minute))
		defer c.Close()
		a1 := inst("svc", "a1", 9001)
		for _, call := range []func(context.Context, *registry.Instance) error{c.Register, c.Register, c.Deregister} {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			start := time.Now()
			err := call(ctx, a1)
			cancel()
			if err != nil {
				t.Errorf("write with hanging tiers: %v", err)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Errorf("write took %v, longer than its ctx", d)
			}
		}
		if n := c.Status().PendingRegistrations; n != 1 {
			t.Errorf("pending = %d, want 1", n)
		}
	})
}
