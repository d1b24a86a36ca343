package consul

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/registry"
)

// BenchmarkLargeService: 2,000 or 20,000 instances of one service on one
// agent, registered with the raw API (64 at a time), read, watched, changed
// once and mass-deregistered through the adapter and a chain over it (guard
// grace 1 s). Each step's time is a metric in ms. Run with -benchtime=1x.
// (Registering 20,000 services on one dev agent takes the agent itself many
// minutes.)
func BenchmarkLargeService(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				largeService(b, n)
			}
		})
	}
}

func largeService(b *testing.B, n int) {
	a := consultest.Start(b, consultest.Options{})
	raw := a.Client(b)
	const svc = "large"
	reg := func(i int) error {
		in := instance(svc, fmt.Sprintf("i%05d", i), 10000+i)
		asr, err := encode(in, in.ID)
		if err != nil {
			return err
		}
		return raw.Agent().ServiceRegister(asr)
	}
	each := func(from, to int, f func(i int) error) {
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		for i := from; i < to; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := f(i); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if first != nil {
			b.Fatal(first)
		}
	}
	start := time.Now()
	each(0, n, reg)
	step := func(name string, d time.Duration) {
		b.ReportMetric(float64(d.Microseconds())/1000, "ms-"+name)
		b.Logf("%s: %v", name, d.Round(time.Millisecond))
	}
	step("create", time.Since(start))

	cfg := Config{Address: a.Addr, TTL: testTTL, WaitTime: testWaitTime, Timeout: 10 * time.Second, Logger: quietLogger()}
	r, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	start = time.Now()
	got, err := r.GetService(ctxB(b, time.Minute), svc)
	if err != nil || len(got) != n {
		b.Fatalf("adapter GetService: %d, %v; want %d", len(got), err, n)
	}
	step("adapter-read", time.Since(start))

	tier, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c, err := chain.New([]chain.Tier{{Name: "consul", Registry: tier}}, chain.WithOwnTiers(true),
		chain.WithLogger(quietLogger()), chain.WithGuard(chain.Guard{Window: time.Second}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	start = time.Now()
	for attempt := 1; ; attempt++ {
		got, err = c.GetService(ctxB(b, time.Minute), svc)
		if err == nil && len(got) == n {
			b.Logf("chain first answer after %d attempts", attempt)
			break
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("chain GetService: %d, %v; want %d", len(got), err, n)
		}
	}
	step("chain-first-answer", time.Since(start))

	aw, err := r.Watch(ctxB(b, 10*time.Minute), svc)
	if err != nil {
		b.Fatal(err)
	}
	cw, err := c.Watch(ctxB(b, 10*time.Minute), svc)
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	ac, cc := countUpdates(b, aw, svc), countUpdates(b, cw, svc)
	ac.wait(b, n, time.Minute)
	step("adapter-watch-first", time.Since(start))
	cc.wait(b, n, time.Minute)
	step("chain-watch-first", time.Since(start))

	start = time.Now()
	if err := reg(n); err != nil {
		b.Fatal(err)
	}
	ac.wait(b, n+1, time.Minute)
	step("adapter-one-change", time.Since(start))
	cc.wait(b, n+1, time.Minute)
	step("chain-one-change", time.Since(start))

	start = time.Now()
	each(0, n+1, func(i int) error { return raw.Agent().ServiceDeregister(fmt.Sprintf("i%05d", i)) })
	step("deregister-all", time.Since(start))
	ac.wait(b, 0, 2*time.Minute)
	step("adapter-mass-delete", time.Since(start))
	cc.wait(b, 0, 2*time.Minute)
	step("chain-mass-delete", time.Since(start))
}

// updates follows a watcher and keeps the size of the last state of svc.
type updates struct {
	mu   sync.Mutex
	size int
	seen bool
	wake chan struct{}
}

func countUpdates(tb testing.TB, w registry.Watcher, svc string) *updates {
	c := &updates{wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
			if err == nil && u.Service == svc {
				c.mu.Lock()
				c.size, c.seen = len(u.Instances), true
				c.mu.Unlock()
				select {
				case c.wake <- struct{}{}:
				default:
				}
			}
		}
	}()
	tb.Cleanup(func() { w.Stop(); <-done })
	return c
}

func (c *updates) wait(tb testing.TB, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		size, seen := c.size, c.seen
		c.mu.Unlock()
		if seen && size == n {
			return
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			tb.Fatalf("watcher: %d instances (seen %v) after %v, want %d", size, seen, timeout, n)
		}
	}
}
