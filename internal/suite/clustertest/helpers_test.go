package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

const (
	ttl        = 3 * time.Second
	maxBackoff = time.Second
	// bound is how long a record may be absent from the majority or a
	// change may take to reach a watcher: TTL + MaxBackoff + an election.
	bound = ttl + maxBackoff + 2*time.Second
	// watchBound is how long a watcher attached to a member that lost its
	// leader may take to move: etcd cancels WithRequireLeader watches only
	// after three election timeouts without a leader (about 3s), the
	// client reconnects with backoff and may pick the same member again.
	watchBound = 15 * time.Second
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startCluster(t *testing.T) *embedetcd.Cluster {
	t.Helper()
	c, err := embedetcd.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func newRegistry(t *testing.T, endpoints []string, ns string) *etcd.Registry {
	t.Helper()
	r, err := etcd.New(etcd.Config{
		Endpoints: endpoints, Namespace: ns, TTL: ttl, MaxBackoff: maxBackoff,
		Timeout: 2 * time.Second, DialTimeout: 2 * time.Second,
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func rawClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func instance(name, id string) *registry.Instance {
	return &registry.Instance{ID: id, Name: name, Version: "v1", Endpoints: []string{"grpc://127.0.0.1:9000"}}
}

// presence polls key on a client and records the longest span it was
// absent (or unreadable).
type presence struct {
	mu        sync.Mutex // guards the fields below
	absentAt  time.Time  // zero while present
	maxAbsent time.Duration
	present   bool
	stop      chan struct{}
	done      chan struct{}
}

func watchPresence(cli *clientv3.Client, key string) *presence {
	p := &presence{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r, err := cli.Get(ctx, key)
			cancel()
			ok := err == nil && len(r.Kvs) == 1
			now := time.Now()
			p.mu.Lock()
			switch {
			case ok && !p.absentAt.IsZero():
				p.maxAbsent = max(p.maxAbsent, now.Sub(p.absentAt))
				p.absentAt = time.Time{}
			case !ok && p.absentAt.IsZero():
				p.absentAt = now
			}
			p.present = ok
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// result stops polling and returns the longest absence and whether the key
// is present now.
func (p *presence) result() (time.Duration, bool) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	longest := p.maxAbsent
	if !p.absentAt.IsZero() {
		longest = max(longest, time.Since(p.absentAt))
	}
	return longest, p.present
}

// watchIDs follows a watcher in the background and exposes the IDs of its
// last state.
type watchIDs struct {
	mu   sync.Mutex
	ids  []string
	errs int
	done chan struct{}
}

func follow(w registry.Watcher) *watchIDs {
	f := &watchIDs{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			u, err := w.Next()
			if err != nil {
				if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
					return
				}
				f.mu.Lock()
				f.errs++
				f.mu.Unlock()
				continue
			}
			ids := make([]string, len(u.Instances))
			for i, in := range u.Instances {
				ids[i] = in.ID
			}
			f.mu.Lock()
			f.ids = ids
			f.mu.Unlock()
		}
	}()
	return f
}

func (f *watchIDs) has(ids ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids = slices.Sorted(slices.Values(ids)) // updates are sorted by ID
	if slices.Equal(f.ids, ids) {
		return ""
	}
	return fmt.Sprintf("watcher shows %v, want %v (%d transient errors)", f.ids, ids, f.errs)
}

func waitFor(t *testing.T, what string, cond func() string) time.Duration {
	t.Helper()
	return testutil.WaitFor(t, 60*time.Second, what, cond)
}

func clientOpts() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}
