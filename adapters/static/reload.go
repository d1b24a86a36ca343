package static

import (
	"maps"
	"os"
	"slices"
	"time"

	"github.com/regchain/regchain/registry"
)

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
