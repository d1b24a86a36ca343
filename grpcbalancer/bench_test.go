package grpcbalancer

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/balancer"
)

// fixedPicker is a pick_first child's READY picker: one result, always.
type fixedPicker struct{}

func (fixedPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, nil
}

// BenchmarkPick measures what the policy adds to a call: a pick among the
// READY endpoints of a level and, with outlier detection, the result's
// accounting in Done (a success: one atomic add and one store).
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 100} {
		for _, outlier := range []bool{true, false} {
			b.Run(fmt.Sprintf("endpoints=%d/outlier=%v", n, outlier), func(b *testing.B) {
				cfg, _ := parseConfig(nil)
				cfg.outlier.disabled = !outlier
				l := &lb{cfg: cfg}
				eps := make([]pickEndpoint, n)
				for i := range eps {
					eps[i] = pickEndpoint{picker: fixedPicker{}, e: &endpoint{}}
				}
				p := newPicker(l, eps)
				ok := balancer.DoneInfo{BytesReceived: true}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						res, err := p.Pick(balancer.PickInfo{})
						if err != nil {
							b.Fatal(err)
						}
						if res.Done != nil {
							res.Done(ok)
						}
					}
				})
			})
		}
	}
}
