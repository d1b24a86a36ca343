package grpcbalancer

import (
	"math/rand/v2"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
)

// pickEndpoint is a READY endpoint a picker may choose.
type pickEndpoint struct {
	picker balancer.Picker // its pick_first child's
	e      *endpoint
}

// picker picks round robin among the READY endpoints of one level and
// counts each call's result on its endpoint. It is immutable but for next.
type picker struct {
	eps   []pickEndpoint
	next  atomic.Uint32
	b     *lb
	limit int // consecutive failures that eject; 0: outlier detection off
}

func newPicker(b *lb, eps []pickEndpoint) *picker {
	p := &picker{eps: eps, b: b}
	if !b.cfg.outlier.disabled {
		p.limit = b.cfg.outlier.consecutiveFailures
	}
	// Start anywhere, so that clients that got the same endpoints in the
	// same order do not all call the first one first.
	p.next.Store(rand.Uint32())
	return p
}

// Pick implements balancer.Picker.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	pe := p.eps[p.next.Add(1)%uint32(len(p.eps))]
	res, err := pe.picker.Pick(info)
	if err != nil || p.limit == 0 {
		return res, err
	}
	done, e, b, limit := res.Done, pe.e, p.b, p.limit
	res.Done = func(di balancer.DoneInfo) {
		if e.record(di, limit) {
			b.failedCall(e)
		}
		if done != nil {
			done(di)
		}
	}
	return res, nil
}
