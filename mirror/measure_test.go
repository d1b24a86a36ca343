package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// seen follows a watcher and records when each instance ID first showed
// up.

type seen struct {
	mu    sync.Mutex
	first map[string]time.Time
	done  chan struct{}
}

func followWatch(t *testing.T, r registry.Registry, service string) *seen {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := r.Watch(ctx, service)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &seen{first: map[string]time.Time{}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			u, err := w.Next()
			if err != nil {
				if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
					return
				}
				continue
			}
			now := time.Now()
			s.mu.Lock()
			for _, in := range u.Instances {
				if _, ok := s.first[in.ID]; !ok {
					s.first[in.ID] = now
				}
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-s.done })
	return s
}

func (s *seen) firstSeen(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.first[id]
	return at, ok
}

// measureLag registers n instances at src one after the other and returns,
// sorted, how long each took to show up in the watcher on dst.
func measureLag(t *testing.T, src registry.Registry, s *seen, service, prefix string, n int) []time.Duration {
	t.Helper()
	lags := make([]time.Duration, 0, n)
	for i := range n {
		in := inst(service, fmt.Sprintf("%s-%d", prefix, i), 10000+i)
		t0 := time.Now()
		register(t, src, in)
		testutil.WaitFor(t, 30*time.Second, "mirrored "+in.ID, func() string {
			if _, ok := s.firstSeen(in.ID); !ok {
				return "not yet"
			}
			return ""
		})
		at, _ := s.firstSeen(in.ID)
		lags = append(lags, at.Sub(t0))
	}
	slices.Sort(lags)
	return lags
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i].Round(100 * time.Microsecond)
}

// diff returns the IDs in want missing from got (lost) and in got missing
// from want (lingering).
func diff(t *testing.T, want, got registry.Registry, service string) (lost, lingering []string) {
	t.Helper()
	ids := func(r registry.Registry) map[string]bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ins, err := r.GetService(ctx, service)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("read %s: %v", service, err)
		}
		m := map[string]bool{}
		for _, in := range ins {
			m[in.ID] = true
		}
		return m
	}
	w, g := ids(want), ids(got)
	for id := range w {
		if !g[id] {
			lost = append(lost, id)
		}
	}
	for id := range g {
		if !w[id] {
			lingering = append(lingering, id)
		}
	}
	return lost, lingering
}
