package chain

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// metrics holds the chain's counters (a tier's latencies are the tier's,
// latency.go); gauges are computed at scrape time.
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

	// The Prometheus descriptors, made on the first Collector (collector.go):
	// a chain nobody scrapes does not carry them.
	descOnce sync.Once
	desc     *descs
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
