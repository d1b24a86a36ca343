package zk_test

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/internal/testsupport/zktest"
	"github.com/regchain/regchain/registry"
)

// fleet creates n instance nodes of service svc under root on a connection
// of its own, as n processes would (ephemeral: closing the connection
// deletes them all at once, a mass delete). Creates are pipelined, 64 in
// flight.
type fleet struct {
	conn *gozk.Conn
	root string
	svc  string
	n    atomic.Int64
}

func newFleet(tb testing.TB, srv *zktest.Server, root, svc string, n int) *fleet {
	tb.Helper()
	f := &fleet{conn: srv.Connect(tb, 10*time.Second), root: root, svc: svc}
	acl := gozk.WorldACL(gozk.PermAll)
	for _, p := range []string{"/regchain-test", root, root + "/" + svc} {
		if _, err := f.conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, gozk.ErrNodeExists) {
			tb.Fatalf("create %s: %v", p, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f.add(i); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fleet) instance(i int) *registry.Instance {
	return &registry.Instance{
		ID: fmt.Sprintf("i%05d", i), Name: f.svc, Version: "v1",
		Metadata:  map[string]string{"zone": "z1"},
		Endpoints: []string{fmt.Sprintf("grpc://10.%d.%d.%d:9000", i>>16&255, i>>8&255, i&255)},
	}
}

// add creates instance i.
func (f *fleet) add(i int) error {
	in := f.instance(i)
	data, err := registry.Marshal(in)
	if err != nil {
		return err
	}
	if _, err := f.conn.Create(f.root+"/"+f.svc+"/"+in.ID, data, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
		return fmt.Errorf("create %s: %w", in.ID, err)
	}
	f.n.Add(1)
	return nil
}

// counter follows a watcher and keeps the size of the last state of svc.
type counter struct {
	mu   sync.Mutex
	size int
	seen bool
	errs int
	wake chan struct{}
}

func follow(tb testing.TB, w registry.Watcher, svc string) *counter {
	c := &counter{wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			u, err := w.Next()
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return
			}
			c.mu.Lock()
			if err != nil {
				c.errs++
			} else if u.Service == svc {
				c.size, c.seen = len(u.Instances), true
			}
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}()
	tb.Cleanup(func() { w.Stop(); <-done })
	return c
}

// wait waits until the watcher's last state has n instances and returns
// how long that took.
func (c *counter) wait(tb testing.TB, n int, timeout time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		size, seen := c.size, c.seen
		c.mu.Unlock()
		if seen && size == n {
			return time.Since(start)
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			tb.Fatalf("watcher: %d instances (seen %v) after %v, want %d", size, seen, timeout, n)
		}
	}
}

// largeService reads, watches, changes and mass-deletes a service of n
// instances through the adapter and through a chain over it, and returns
// the times each step took.
func largeService(tb testing.TB, n int) map[string]time.Duration {
	srv := server(tb)
	root := uniqueRoot(tb)
	const svc = "large"
	start := time.Now()
	f := newFleet(tb, srv, root, svc, n)
	times := map[string]time.Duration{"create": time.Since(start)}
	r := newRegistry(tb, srv, zk.Config{Namespace: root})
	start = time.Now()
	got, err := r.GetService(ctxT(tb, 60*time.Second), svc)
	if err != nil || len(got) != n {
		tb.Fatalf("adapter GetService: %d instances, %v; want %d", len(got), err, n)
	}
	times["adapter read"] = time.Since(start)
	start = time.Now()
	if got, err = r.GetService(ctxT(tb, 60*time.Second), svc); err != nil || len(got) != n {
		tb.Fatalf("adapter GetService again: %d instances, %v; want %d", len(got), err, n)
	}
	times["adapter read again"] = time.Since(start)

	// The chain gets a Registry of its own: its first read is a cold one.
	c, err := chain.New([]chain.Tier{{Name: "zk", Registry: newRegistry(tb, srv, zk.Config{Namespace: root})}},
		chain.WithLogger(slog.New(slog.DiscardHandler)), chain.WithGuard(chain.Guard{Window: time.Second}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	// A consumer retries a read that failed (the chain's call timeout is 2 s).
	start = time.Now()
	for attempt := 1; ; attempt++ {
		got, err = c.GetService(ctxT(tb, 30*time.Second), svc)
		if err == nil && len(got) == n {
			tb.Logf("chain first answer after %d attempts", attempt)
			break
		}
		if time.Since(start) > time.Minute {
			tb.Fatalf("chain GetService: %d instances, %v; want %d", len(got), err, n)
		}
	}
	times["chain first answer"] = time.Since(start)

	aw, err := r.Watch(ctxT(tb, 5*time.Minute), svc)
	if err != nil {
		tb.Fatal(err)
	}
	cw, err := c.Watch(ctxT(tb, 5*time.Minute), svc)
	if err != nil {
		tb.Fatal(err)
	}
	start = time.Now()
	ac, cc := follow(tb, aw, svc), follow(tb, cw, svc)
	times["adapter watch first"] = ac.wait(tb, n, time.Minute)
	times["chain watch first"] = cc.wait(tb, n, time.Minute)
	_ = start

	start = time.Now()
	if err := f.add(n); err != nil {
		tb.Fatal(err)
	}
	ac.wait(tb, n+1, time.Minute)
	times["adapter one change"] = time.Since(start)
	cc.wait(tb, n+1, time.Minute)
	times["chain one change"] = time.Since(start)

	start = time.Now()
	f.conn.Close() // the fleet's session ends: ZooKeeper deletes every node at once
	ac.wait(tb, 0, 2*time.Minute)
	times["adapter mass delete"] = time.Since(start)
	cc.wait(tb, 0, 2*time.Minute)
	times["chain mass delete"] = time.Since(start)
	return times
}

// A service of 2,000 instances is read, watched, changed and mass-deleted
// through the adapter and a chain over it. (BenchmarkLargeService measures
// 20,000.)
func TestLargeService(t *testing.T) {
	for step, d := range largeService(t, 2000) {
		t.Logf("%s: %v", step, d.Round(time.Millisecond))
	}
}
