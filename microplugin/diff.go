package microplugin

import (
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// Actions of go-micro watch results.
const (
	actionCreate = "create"
	actionUpdate = "update"
	actionDelete = "delete"
)

// differ turns full states into go-micro's per-node events. It remembers the
// last state seen per service; it is used by one goroutine.
type differ struct {
	state map[string]map[string]*registry.Instance // service -> node ID -> instance
}

// apply diffs u against the previous state of u.Service and returns the
// results, creates first, then updates, then deletes (so a replaced node
// never leaves a consumer's cache momentarily empty). A node whose version
// changed is deleted from its old version and created in the new one.
// Instances that cannot be mapped to a node are left out of the state;
// problems says why.
func (d *differ) apply(u *registry.Update) (results []*mreg.Result, problems []error) {
	if d.state == nil {
		d.state = make(map[string]map[string]*registry.Instance)
	}
	old := d.state[u.Service]
	cur := make(map[string]*registry.Instance, len(u.Instances))
	for _, in := range u.Instances {
		if in == nil || in.Name != u.Service {
			continue
		}
		if _, err := toNode(in); err != nil {
			problems = append(problems, err)
			continue
		}
		cur[in.ID] = in
	}
	var created, updated, deleted []*registry.Instance
	for id, in := range cur {
		prev, ok := old[id]
		switch {
		case !ok:
			created = append(created, in)
		case prev.Version != in.Version:
			deleted = append(deleted, prev)
			created = append(created, in)
		case !prev.Equal(in):
			updated = append(updated, in)
		}
	}
	for id, prev := range old {
		if _, ok := cur[id]; !ok {
			deleted = append(deleted, prev)
		}
	}
	if len(cur) == 0 {
		delete(d.state, u.Service)
	} else {
		d.state[u.Service] = cur
	}
	for _, step := range []struct {
		action string
		ins    []*registry.Instance
	}{{actionCreate, created}, {actionUpdate, updated}, {actionDelete, deleted}} {
		if len(step.ins) == 0 {
			continue
		}
		svcs, perr := fromInstances(step.ins, true)
		problems = append(problems, perr...)
		for _, svc := range svcs {
			results = append(results, &mreg.Result{Action: step.action, Service: svc})
		}
	}
	return results, problems
}
