package chain

import (
	"errors"
	"time"

	"github.com/regchain/regchain/registry"

	"github.com/prometheus/client_golang/prometheus"
)

// latency holds the per-tier latency histograms, next to the counters of
// metrics.
type latency struct {
	probe, read, write *prometheus.HistogramVec
}

// latencyBuckets run from 0.5ms to about 16s, doubling.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

func (l *latency) init(c *Chain) {
	labels := prometheus.Labels{"chain": c.opts.name}
	h := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "regchain_chain_tier_" + name + "_seconds",
			Help:        help,
			ConstLabels: labels,
			Buckets:     latencyBuckets,
		}, []string{"tier", "result"})
	}
	l.probe = h("probe", "Latency of the tier's health probes; result ok or error.")
	l.read = h("read", "Latency of the chain's reads of a service from the tier: a watch's first state (from the start of the watch) and the guard's re-reads; result ok (not found included) or error.")
	l.write = h("write", "Latency of registrations and deregistrations written to the tier; result ok or error.")
}

// observe records one call of kind h to tier, started at start.
func (l *latency) observe(h *prometheus.HistogramVec, tier string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	h.WithLabelValues(tier, result).Observe(time.Since(start).Seconds())
}

func (l *latency) describe(ch chan<- *prometheus.Desc) {
	l.probe.Describe(ch)
	l.read.Describe(ch)
	l.write.Describe(ch)
}

func (l *latency) collect(ch chan<- prometheus.Metric) {
	l.probe.Collect(ch)
	l.read.Collect(ch)
	l.write.Collect(ch)
}

// ignoreNotFound returns nil for registry.ErrNotFound: an answer, not a
// failed read.
func ignoreNotFound(err error) error {
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	return err
}
