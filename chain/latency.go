package chain

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regchain/regchain/registry"
)

// The kinds of a tier's calls whose latency the chain keeps.
const (
	latProbe = iota // health probes
	latRead         // a watch's first state, the guard's re-reads
	latWrite        // registrations and deregistrations
	latKinds
)

// latencyBuckets run from 0.5ms to about 16s, doubling.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

// latency is a tier's call latencies per kind and result (ok, error), as
// counts per bucket: a few hundred bytes a tier, exported as histograms by
// the Collector.
type latency [latKinds][2]hist

// hist counts observations per bucket (not cumulated: the last counts
// those above every bound), with their count and sum.
type hist struct {
	buckets [16 + 1]atomic.Uint64
	count   atomic.Uint64
	sumNs   atomic.Int64
}

// observe records one call of kind to the tier, started at start.
func (l *latency) observe(kind int, start time.Time, err error) {
	res := 0
	if err != nil {
		res = 1
	}
	d := time.Since(start)
	h := &l[kind][res]
	i := 0
	for i < len(latencyBuckets) && d.Seconds() > latencyBuckets[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNs.Add(int64(d))
	h.count.Add(1)
}

// collect exports the tier's histograms that have observations.
func (l *latency) collect(ch chan<- prometheus.Metric, desc *[latKinds]*prometheus.Desc, tier string) {
	for kind := range latKinds {
		for res, result := range []string{"ok", "error"} {
			h := &l[kind][res]
			n := h.count.Load()
			if n == 0 {
				continue
			}
			cum := make(map[float64]uint64, len(latencyBuckets))
			var acc uint64
			for i, b := range latencyBuckets {
				acc += h.buckets[i].Load()
				cum[b] = acc
			}
			ch <- prometheus.MustNewConstHistogram(desc[kind], n, time.Duration(h.sumNs.Load()).Seconds(), cum, tier, result)
		}
	}
}

// ignoreNotFound returns nil for registry.ErrNotFound: an answer, not a
// failed read.
func ignoreNotFound(err error) error {
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	return err
}
