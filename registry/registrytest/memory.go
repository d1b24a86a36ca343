package registrytest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/regchain/regchain/registry"
)

// Memory is the in-memory reference Registry: the contract with nothing else,
// used to test the kit itself, the chain and the plugins. Source is "memory"
// unless set with NewMemoryNamed.
//
// Memory is safe for concurrent use. Its availability can be switched off to
// simulate a backend outage (SetAvailable), which makes every call return
// ErrUnavailable and watchers report it.
type Memory struct {
	source string
	hub    registry.Hub

	mu        sync.Mutex // guards the fields below
	services  map[string]map[string]*registry.Instance
	rev       int64
	closed    bool
	available bool
}

var (
	_ registry.Registry  = (*Memory)(nil)
	_ registry.Pinger    = (*Memory)(nil)
	_ registry.Validator = (*Memory)(nil)
)

// ValidateInstance implements registry.Validator: Memory refuses exactly
// what registry.Validate refuses.
func (m *Memory) ValidateInstance(in *registry.Instance) error { return registry.Validate(in) }

// NewMemory returns an empty in-memory registry whose updates say Source
// "memory".
func NewMemory() *Memory { return NewMemoryNamed("memory") }

// NewMemoryNamed returns an empty in-memory registry whose updates carry
// source as their Source.
func NewMemoryNamed(source string) *Memory {
	return &Memory{source: source, services: make(map[string]map[string]*registry.Instance), available: true}
}

// SetAvailable switches simulated availability. While unavailable every call
// returns an error wrapping registry.ErrUnavailable, watchers receive it as a
// transient error, and state is kept. When it comes back, watchers receive
// the current state.
func (m *Memory) SetAvailable(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.available == ok {
		return
	}
	m.available = ok
	if !ok {
		m.hub.Fail(fmt.Errorf("%s: %w: simulated outage", m.source, registry.ErrUnavailable))
		return
	}
	for name := range m.services {
		m.publishLocked(name)
	}
}

func (m *Memory) check() error {
	if m.closed {
		return fmt.Errorf("%s: %w", m.source, registry.ErrClosed)
	}
	if !m.available {
		return fmt.Errorf("%s: %w: simulated outage", m.source, registry.ErrUnavailable)
	}
	return nil
}

// Register implements registry.Registry.
func (m *Memory) Register(ctx context.Context, in *registry.Instance) error {
	if err := registry.Validate(in); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return err
	}
	svc := m.services[in.Name]
	if svc == nil {
		svc = make(map[string]*registry.Instance)
		m.services[in.Name] = svc
	}
	if old, ok := svc[in.ID]; ok && old.Equal(in) {
		return nil
	}
	svc[in.ID] = in.Clone()
	m.rev++
	m.publishLocked(in.Name)
	return nil
}

// Deregister implements registry.Registry.
func (m *Memory) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := registry.ValidateKey(in); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return err
	}
	svc := m.services[in.Name]
	if _, ok := svc[in.ID]; !ok {
		return nil
	}
	delete(svc, in.ID)
	if len(svc) == 0 {
		delete(m.services, in.Name)
	}
	m.rev++
	m.publishLocked(in.Name)
	return nil
}

// GetService implements registry.Registry.
func (m *Memory) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if err := registry.ValidateName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	out := m.instancesLocked(name)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %q: %w", m.source, name, registry.ErrNotFound)
	}
	return out, nil
}

// ListServices implements registry.Registry.
func (m *Memory) ListServices(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m.services))
	for name := range m.services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Watch implements registry.Registry.
func (m *Memory) Watch(ctx context.Context, name string) (registry.Watcher, error) {
	if err := registry.ValidateWatch(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("%s: %w", m.source, registry.ErrClosed)
	}
	f := registry.NewFeed(ctx, nil) // the hub forgets it when it ends
	if !m.available {
		m.hub.Add(f, name)
		f.Fail(fmt.Errorf("%s: %w: simulated outage", m.source, registry.ErrUnavailable))
		return f, nil
	}
	m.hub.Add(f, name, registry.States(name, slices.Sorted(maps.Keys(m.services)), m.updateLocked)...)
	return f, nil
}

// Ping implements registry.Pinger.
func (m *Memory) Ping(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check()
}

// Close implements registry.Registry.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.hub.EndAll(fmt.Errorf("%s: %w", m.source, registry.ErrClosed))
	return nil
}

func (m *Memory) instancesLocked(name string) []*registry.Instance {
	svc := m.services[name]
	out := make([]*registry.Instance, 0, len(svc))
	for _, in := range svc {
		out = append(out, in.Clone())
	}
	registry.SortInstances(out)
	return out
}

func (m *Memory) updateLocked(name string) *registry.Update {
	return &registry.Update{Service: name, Instances: m.instancesLocked(name), Source: m.source, Revision: m.rev, Time: time.Now()}
}

// publishLocked runs under m.mu so that watchers see states in order;
// Feed.Publish never blocks.
func (m *Memory) publishLocked(name string) {
	m.hub.Publish(m.updateLocked(name))
}
