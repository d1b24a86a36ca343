package grpcbalancer

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/balancer"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

// fixedPicker is a pick_first child's READY picker: one result, always.
type fixedPicker struct{}

func (fixedPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, nil
}

// BenchmarkPick measures what the policy adds to a call: a pick among the
// READY endpoints of the nearest level (nothing ejected: the tracker is
// steady) and, with outlier detection, the result's report in Done (a
// success: nearest.Endpoint.Report).
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 100} {
		for _, outlier := range []bool{true, false} {
			b.Run(fmt.Sprintf("endpoints=%d/outlier=%v", n, outlier), func(b *testing.B) {
				tr := nearest.NewTracker(nearest.Ejection{})
				eps := make([]pickEndpoint, n)
				for i := range eps {
					eps[i] = pickEndpoint{picker: fixedPicker{}, ep: tr.Endpoint(fmt.Sprint(i)), level: locality.Level(i % 3)}
				}
				p := newPicker(eps, tr, outlier)
				ok := balancer.DoneInfo{BytesReceived: true}
				ctx := context.Background()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						res, err := p.Pick(balancer.PickInfo{Ctx: ctx})
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
