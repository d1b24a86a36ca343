package nearest_test

import (
	"context"
	"fmt"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

// A door's view of three instances of one service, from a client in zone
// eu-1a: calls go to the zone, move to the region when the zone's one
// instance fails three times in a row, and a retried call skips the
// instance its first attempt went to.
func Example() {
	self := locality.Locality{Zone: "eu-1a", Region: "eu-1"}
	tr := nearest.NewTracker(nearest.Ejection{}) // 3 failures, 5s .. 60s
	type inst struct {
		addr  string
		level locality.Level
		ep    *nearest.Endpoint
	}
	var insts []inst
	for _, in := range []struct{ addr, zone, region string }{
		{"10.0.0.1:9000", "eu-1a", "eu-1"},
		{"10.0.1.1:9000", "eu-1b", "eu-1"},
		{"10.1.0.1:9000", "us-1a", "us-1"},
	} {
		md := map[string]string{locality.KeyZone: in.zone, locality.KeyRegion: in.region}
		insts = append(insts, inst{in.addr, nearest.LevelOf(self, md), tr.Endpoint("greeter|" + in.addr)})
	}
	at := func(i inst) (locality.Level, *nearest.Endpoint) { return i.level, i.ep }
	show := func(what string, tried *nearest.Tried) {
		lvl, got := nearest.Pick(insts, at, tried)
		fmt.Print(what, ": ", lvl)
		for _, i := range got {
			fmt.Print(" ", i.addr)
		}
		fmt.Println()
	}

	show("healthy", nil)
	_, tried := nearest.WithTried(context.Background())
	tried.Add(insts[0].ep) // the first attempt went to the zone's instance
	show("retry", tried)
	for range 3 {
		insts[0].ep.Report(true)
	}
	show("zone ejected", nil)
	// Output:
	// healthy: zone 10.0.0.1:9000
	// retry: region 10.0.1.1:9000
	// zone ejected: region 10.0.1.1:9000
}
