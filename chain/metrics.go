package chain

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the chain's counters; gauges are computed at scrape time.
type metrics struct {
	failovers atomic.Int64
	failbacks atomic.Int64
	held      atomic.Int64
	confirmed atomic.Int64
	discarded atomic.Int64
	released  atomic.Int64
	rollbacks atomic.Int64
	evictions atomic.Int64

	recentMu sync.Mutex // guards recent
	recent   []Switch   // the last maxRecent source switches, oldest first

	lat latency // per-tier latency histograms (latency.go)

	tierUp, tierFailures, tierDowns, replays, pending   *prometheus.Desc
	failoverD, failbackD, heldD, confirmedD, discardedD *prometheus.Desc
	releasedD, rollbacksD, evictionsD                   *prometheus.Desc
	services, frozen, snapCommits, snapErrors           *prometheus.Desc
	snapLastSave, snapAge, snapEntries, level           *prometheus.Desc
}

func (m *metrics) init(c *Chain) {
	labels := prometheus.Labels{"chain": c.opts.name}
	d := func(name, help string, vars ...string) *prometheus.Desc {
		return prometheus.NewDesc("regchain_chain_"+name, help, vars, labels)
	}
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
	m.lat.init(c)
}

// switched counts a change of a service's source tiers.
func (m *metrics) switched(c *Chain, name string, old, nv *state) {
	n := len(c.tiers)
	o, w := lowest(old.mask, n), lowest(nv.mask, n)
	back := w < o || (w == o && old.mask&^nv.mask == 0)
	m.remember(Switch{Time: time.Now(), Service: name, From: old.u.Source, To: nv.u.Source, Failback: back})
	if back {
		m.failbacks.Add(1)
		c.log.Info("chain: failback", "service", name, "from", old.u.Source, "to", nv.u.Source)
		return
	}
	m.failovers.Add(1)
	c.log.Warn("chain: failover", "service", name, "from", old.u.Source, "to", nv.u.Source)
}

// maxRecent bounds the switches Status reports.
const maxRecent = 32

func (m *metrics) remember(sw Switch) {
	m.recentMu.Lock()
	defer m.recentMu.Unlock()
	if len(m.recent) == maxRecent {
		copy(m.recent, m.recent[1:])
		m.recent = m.recent[:maxRecent-1]
	}
	m.recent = append(m.recent, sw)
}

func (m *metrics) recentSwitches() []Switch {
	m.recentMu.Lock()
	defer m.recentMu.Unlock()
	return slices.Clone(m.recent)
}

// Switch is one change of a service's source.
type Switch struct {
	Time     time.Time
	Service  string
	From, To string // sources, as in Update.Source
	Failback bool   // to a higher tier (or off the snapshot); false: a failover
}
