package chain

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of the chain's metrics (tier
// health, failovers, failbacks, replays, pending registrations, guard
// counts, sources, snapshot commits and age). All carry the constant label
// chain (see WithName). Register it with a prometheus.Registerer.
func (c *Chain) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Chain }

func (k collector) Describe(ch chan<- *prometheus.Desc) {
	m := &k.c.m
	for _, d := range []*prometheus.Desc{
		m.tierUp, m.tierFailures, m.tierDowns, m.replays, m.pending,
		m.failoverD, m.failbackD, m.heldD, m.confirmedD, m.discardedD,
		m.releasedD, m.rollbacksD, m.evictionsD,
		m.services, m.frozen, m.snapCommits, m.snapErrors, m.snapLastSave, m.snapAge, m.snapEntries, m.level,
	} {
		ch <- d
	}
	m.lat.describe(ch)
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	c := k.c
	m := &c.m
	st := c.Status()
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v int64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	for i, ts := range st.Tiers {
		t := c.tiers[i]
		gauge(m.tierUp, b2f(ts.Up), ts.Name)
		counter(m.tierFailures, t.failures.Load(), ts.Name)
		counter(m.tierDowns, t.downs.Load(), ts.Name)
		if !t.readOnly {
			counter(m.replays, t.replays.Load(), ts.Name)
			gauge(m.pending, float64(ts.Pending), ts.Name)
		}
	}
	counter(m.failoverD, m.failovers.Load())
	counter(m.failbackD, m.failbacks.Load())
	counter(m.heldD, m.held.Load())
	counter(m.confirmedD, m.confirmed.Load())
	counter(m.discardedD, m.discarded.Load())
	counter(m.releasedD, m.released.Load())
	counter(m.rollbacksD, m.rollbacks.Load())
	counter(m.evictionsD, m.evictions.Load())
	bySource := make(map[string]int)
	for _, s := range st.Services {
		bySource[s.Source]++
	}
	for src, n := range bySource {
		gauge(m.services, float64(n), src)
	}
	gauge(m.frozen, b2f(st.Frozen))
	counter(m.snapCommits, st.Snapshot.Commits)
	counter(m.snapErrors, st.Snapshot.Errors)
	last := 0.0
	if !st.Snapshot.LastSave.IsZero() {
		last = float64(st.Snapshot.LastSave.UnixNano()) / float64(time.Second)
	}
	gauge(m.snapLastSave, last)
	gauge(m.snapAge, st.Snapshot.ServedAge.Seconds())
	gauge(m.snapEntries, float64(st.Snapshot.Services))
	gauge(m.level, float64(st.Degradation.Level))
	m.lat.collect(ch)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
