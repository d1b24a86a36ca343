package chain_test

import (
	"context"
	"sync"
	"time"

	"github.com/regchain/regchain/registry"
)

// memStore is an in-test registry.SnapshotStore: a map of deep copies,
// counting commits, with a switch to make saves fail.
type memStore struct {
	mu      sync.Mutex
	entries map[string]registry.SnapshotEntry
	commits int
	fail    error
}

func newMemStore() *memStore { return &memStore{entries: make(map[string]registry.SnapshotEntry)} }

func (s *memStore) SaveSnapshot(ctx context.Context, updates []*registry.Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	now := time.Now()
	for _, u := range updates {
		s.entries[u.Service] = registry.SnapshotEntry{Update: u.Clone(), Saved: now}
	}
	s.commits++
	return nil
}

// SaveSnapshotEntries implements registry.LastGoodSaver.
func (s *memStore) SaveSnapshotEntries(ctx context.Context, entries []registry.SnapshotEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	now := time.Now()
	for _, e := range entries {
		s.entries[e.Update.Service] = registry.SnapshotEntry{Update: e.Update.Clone(), LastGood: e.LastGood.Clone(), Saved: now}
	}
	s.commits++
	return nil
}

func (s *memStore) LoadSnapshot(ctx context.Context) ([]registry.SnapshotEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]registry.SnapshotEntry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, registry.SnapshotEntry{Update: e.Update.Clone(), LastGood: e.LastGood.Clone(), Saved: e.Saved})
	}
	return out, nil
}

func (s *memStore) get(name string) (registry.SnapshotEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	return e, ok
}

func (s *memStore) commitCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}
