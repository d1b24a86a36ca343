package grpcbalancer

import (
	"math/rand/v2"
	"sync/atomic"

	"google.golang.org/grpc/balancer"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

// pickEndpoint is a READY endpoint a picker may choose.
type pickEndpoint struct {
	picker balancer.Picker // its pick_first child's
	ep     *nearest.Endpoint
	level  locality.Level
}

func pickAt(pe pickEndpoint) (locality.Level, *nearest.Endpoint) { return pe.level, pe.ep }

// picker picks round robin among the READY endpoints of the nearest level
// with available ones (package locality/nearest's Pick), and reports each
// call's result to its endpoint. It is immutable but for next.
type picker struct {
	ready   []pickEndpoint // every READY endpoint
	nearest []pickEndpoint // those of the nearest level with any
	tracker *nearest.Tracker
	next    atomic.Uint32
	report  bool // outlier detection is on
}

func newPicker(ready []pickEndpoint, tr *nearest.Tracker, report bool) *picker {
	p := &picker{ready: ready, tracker: tr, report: report}
	lvl := locality.LevelAny
	for _, pe := range ready {
		lvl = min(lvl, pe.level)
	}
	for _, pe := range ready {
		if pe.level == lvl {
			p.nearest = append(p.nearest, pe)
		}
	}
	// Start anywhere, so that clients that got the same endpoints in the
	// same order do not all call the first one first.
	p.next.Store(rand.Uint32())
	return p
}

// Pick implements balancer.Picker. While no endpoint of the channel is
// ejected or on probation (and the call carries no nearest.Tried record),
// nearest.Pick would return the nearest level's READY endpoints: the
// picker goes round robin over those it found when it was built, with no
// pass over the others.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	var pe pickEndpoint
	var tried *nearest.Tried
	if info.Ctx != nil {
		tried = nearest.TriedFrom(info.Ctx)
	}
	if p.tracker.Steady() && tried == nil {
		pe = p.nearest[p.next.Add(1)%uint32(len(p.nearest))]
	} else {
		_, cands := nearest.Pick(p.ready, pickAt, tried)
		pe = cands[p.next.Add(1)%uint32(len(cands))]
		tried.Add(pe.ep)
	}
	res, err := pe.picker.Pick(info)
	if err != nil || !p.report || pe.ep == nil {
		return res, err
	}
	done, ep := res.Done, pe.ep
	res.Done = func(di balancer.DoneInfo) {
		if fail, ok := failed(di); ok {
			ep.Report(fail)
		}
		if done != nil {
			done(di)
		}
	}
	return res, nil
}
