package chain

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of the chain's metrics (tier
// health, failovers, failbacks, replays, pending registrations, guard
// counts, sources, snapshot commits and age, the tiers' latencies). All
// carry the constant label chain (see WithName). Register it with a
// prometheus.Registerer. The counters count from the chain's start,
// whenever the collector is made.
func (c *Chain) Collector() prometheus.Collector {
	c.m.descOnce.Do(func() { c.m.desc = newDescs(c.opts.name) })
	return collector{c}
}

type collector struct{ c *Chain }

// descs are the descriptors of the chain's metrics.
type descs struct {
	tierUp, tierFailures, tierDowns, replays, pending   *prometheus.Desc
	failoverD, failbackD, heldD, confirmedD, discardedD *prometheus.Desc
	releasedD, rollbacksD, evictionsD                   *prometheus.Desc
	services, frozen, snapCommits, snapErrors           *prometheus.Desc
	snapLastSave, snapAge, snapEntries, level           *prometheus.Desc
	lat                                                 [latKinds]*prometheus.Desc
}

func newDescs(name string) *descs {
	labels := prometheus.Labels{"chain": name}
	d := func(name, help string, vars ...string) *prometheus.Desc {
		return prometheus.NewDesc("regchain_chain_"+name, help, vars, labels)
	}
	m := &descs{}
	m.tierUp = d("tier_up", "1 while the tier's circuit is closed (the tier is used), 0 while it is open.", "tier")
	m.tierFailures = d("tier_failures_total", "Failed probes, calls and watch errors that count against the tier's health.", "tier")
	m.tierDowns = d("tier_downs_total", "Times the tier's circuit opened.", "tier")
	m.replays = d("replays_total", "Registrations and deregistrations written to the tier in the background (after a failure or a recovery).", "tier")
	m.pending = d("pending_registrations", "Registrations and deregistrations the tier does not hold yet.", "tier")
	m.failoverD = d("failovers_total", "Service source switches to a lower tier or to the snapshot.")
	m.failbackD = d("failbacks_total", "Service source switches to a higher tier or away from the snapshot.")
	m.heldD = d("guard_held_total", "Suspect drops held by the empty-push guard.")
	m.confirmedD = d("guard_confirmed_total", "Held drops confirmed by their re-reads over the guard window and served.")
	m.discardedD = d("guard_discarded_total", "Held drops never served: the service came back (a state that is not a drop) before they were confirmed.")
	m.releasedD = d("guard_released_total", "Held drops let through by the operator (ReleaseHold).")
	m.rollbacksD = d("rollbacks_total", "Services rolled back to their last known good state by the operator (Rollback).")
	m.evictionsD = d("evictions_total", "Services forgotten from memory: idle, absent, or over the cap.")
	m.services = d("services", "Services by the source of their current view.", "source")
	m.frozen = d("frozen", "1 while the chain is frozen on the snapshot.")
	m.snapCommits = d("snapshot_commits_total", "Successful snapshot saves.")
	m.snapErrors = d("snapshot_errors_total", "Failed snapshot saves.")
	m.snapLastSave = d("snapshot_last_save_timestamp_seconds", "When the snapshot was last saved (Unix time), 0 if never.")
	m.snapAge = d("snapshot_served_age_seconds", "Age of the oldest state served from the snapshot, 0 if none is.")
	m.snapEntries = d("snapshot_services", "Services the snapshot holds.")
	m.level = d("degradation_level", "The chain's degradation level: 0 all tiers healthy, 1 failed over (a tier down or serving from the snapshot), 2 serving a static tier, 3 registrations cannot be written anywhere.")
	m.lat[latProbe] = d("tier_probe_seconds", "Latency of the tier's health probes; result ok or error.", "tier", "result")
	m.lat[latRead] = d("tier_read_seconds", "Latency of the chain's reads of a service from the tier: a watch's first state (from the start of the watch) and the guard's re-reads; result ok (not found included) or error.", "tier", "result")
	m.lat[latWrite] = d("tier_write_seconds", "Latency of registrations and deregistrations written to the tier; result ok or error.", "tier", "result")
	return m
}

func (k collector) Describe(ch chan<- *prometheus.Desc) {
	m := k.c.m.desc
	for _, d := range []*prometheus.Desc{
		m.tierUp, m.tierFailures, m.tierDowns, m.replays, m.pending,
		m.failoverD, m.failbackD, m.heldD, m.confirmedD, m.discardedD,
		m.releasedD, m.rollbacksD, m.evictionsD,
		m.services, m.frozen, m.snapCommits, m.snapErrors, m.snapLastSave, m.snapAge, m.snapEntries, m.level,
		m.lat[latProbe], m.lat[latRead], m.lat[latWrite],
	} {
		ch <- d
	}
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	c := k.c
	cm := &c.m
	m := cm.desc
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
	counter(m.failoverD, cm.failovers.Load())
	counter(m.failbackD, cm.failbacks.Load())
	counter(m.heldD, cm.held.Load())
	counter(m.confirmedD, cm.confirmed.Load())
	counter(m.discardedD, cm.discarded.Load())
	counter(m.releasedD, cm.released.Load())
	counter(m.rollbacksD, cm.rollbacks.Load())
	counter(m.evictionsD, cm.evictions.Load())
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
	for _, t := range c.tiers {
		t.lat.collect(ch, &m.lat, t.name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
