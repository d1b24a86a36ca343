package static

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/regchain/regchain/registry"

	"os"
)

// Registry is the static registry. It is safe for concurrent use.
type Registry struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the reload loop ends; nil without a file
	hub    registry.Hub

	mu       sync.RWMutex // guards the fields below
	services map[string][]*registry.Instance
	file     fileState
	loaded   time.Time
	rev      int64
	closed   bool
}

var (
	_ registry.Registry     = (*Registry)(nil)
	_ registry.Pinger       = (*Registry)(nil)
	_ registry.SharedReader = (*Registry)(nil)
)

// New returns a static registry. It fails, with an error wrapping
// registry.ErrInvalid that names the instance and the fault, if an
// instance is invalid, and if Config.File cannot be read or parsed.
func New(cfg Config) (*Registry, error) {
	cfg = cfg.withDefaults()
	if err := check(cfg.Instances, "config"); err != nil {
		return nil, err
	}
	r := &Registry{cfg: cfg, log: cfg.Logger.With("registry", Source), loaded: time.Now(), rev: 1}
	r.cfg.Instances = registry.CloneInstances(cfg.Instances)
	var fromFile []*registry.Instance
	if cfg.File != "" {
		ins, info, err := readFile(cfg.File)
		if err != nil {
			return nil, err
		}
		fromFile, r.file = ins, fileState{info}
	}
	r.services = index(r.cfg.Instances, fromFile)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if cfg.File != "" {
		r.done = make(chan struct{})
		go r.reloadLoop()
	}
	return r, nil
}

// reloadLoop checks the file every PollInterval until Close.
func (r *Registry) reloadLoop() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.reload()
		}
	}
}

// reload reads the file again if it changed and publishes what changed.
func (r *Registry) reload() {
	info, err := os.Stat(r.cfg.File)
	r.mu.RLock()
	same := err == nil && r.file.same(info)
	r.mu.RUnlock()
	if same {
		return
	}
	ins, info, err := readFile(r.cfg.File)
	if err != nil {
		r.mu.Lock()
		warn := r.file.info != nil // warn once per bad version
		r.file = fileState{}
		r.mu.Unlock()
		if warn {
			r.log.Warn("static: cannot reload the file; keeping the last list", "file", r.cfg.File, "error", err)
		}
		return
	}
	next := index(r.cfg.Instances, ins)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.file = fileState{info}
	prev := r.services
	changed := false
	var updates []*registry.Update
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(unionKeys(prev, next))) {
		if !registry.EqualInstances(prev[name], next[name]) {
			changed = true
		}
	}
	if changed {
		r.services, r.loaded = next, now
		r.rev++
		for _, name := range slices.Sorted(maps.Keys(unionKeys(prev, next))) {
			if !registry.EqualInstances(prev[name], next[name]) {
				updates = append(updates, r.updateLocked(name))
			}
		}
	}
	r.mu.Unlock()
	if changed {
		r.log.Debug("static: file reloaded", "file", r.cfg.File, "services", len(next))
	}
	for _, u := range updates {
		r.hub.Publish(u)
	}
}

func unionKeys(a, b map[string][]*registry.Instance) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func (r *Registry) updateLocked(name string) *registry.Update {
	return &registry.Update{
		Service:   name,
		Instances: registry.CloneInstances(r.services[name]),
		Source:    Source,
		Revision:  r.rev,
		Time:      r.loaded,
	}
}

func (r *Registry) errClosed(op string) error {
	return fmt.Errorf("static: %s: %w", op, registry.ErrClosed)
}

// GetService implements registry.Registry.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	ins, err := r.GetServiceShared(ctx, name)
	return registry.CloneInstances(ins), err
}

// GetServiceShared implements registry.SharedReader.
func (r *Registry) GetServiceShared(_ context.Context, name string) ([]*registry.Instance, error) {
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("static: get: %w", err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, r.errClosed("get")
	}
	ins := r.services[name]
	if len(ins) == 0 {
		return nil, fmt.Errorf("static: get %s: %w", registry.Quote(name), registry.ErrNotFound)
	}
	return slices.Clone(ins), nil
}

// ListServices implements registry.Registry.
func (r *Registry) ListServices(context.Context) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, r.errClosed("list")
	}
	return slices.Sorted(maps.Keys(r.services)), nil
}

// Ping implements registry.Pinger: the static list always answers.
func (r *Registry) Ping(context.Context) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return r.errClosed("ping")
	}
	return nil
}

// Close stops the reload loop and ends every watcher with ErrClosed.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	if r.done != nil {
		<-r.done
	}
	r.hub.EndAll(r.errClosed("watch"))
	return nil
}
