package admin

import (
	"time"

	"github.com/regchain/regchain/chain"
)

// Report is the JSON status (GET …/status): everything chain.Status knows,
// the readiness verdict and the mutation mode. Times are RFC 3339 (omitted
// when unknown); durations are in seconds.
type Report struct {
	Now          time.Time   `json:"now"`
	Live         bool        `json:"live"`
	Ready        bool        `json:"ready"`
	NotReady     []string    `json:"not_ready,omitempty"` // the readiness rules that failed
	Level        chain.Level `json:"level"`               // "L0" to "L3"
	LevelMeaning string      `json:"level_meaning"`
	LevelReasons []string    `json:"level_reasons,omitempty"`
	LevelSince   *time.Time  `json:"level_since,omitempty"`
	Frozen       bool        `json:"frozen"`
	// Mutations is "off", "token" or "loopback" (see Config).
	Mutations            string         `json:"mutations"`
	Tiers                []Tier         `json:"tiers"`
	Services             []Service      `json:"services"`
	PendingRegistrations int            `json:"pending_registrations"`
	Registrations        []Registration `json:"registrations"`
	Snapshot             Snapshot       `json:"snapshot"`
	Recent               []Switch       `json:"recent"`
	Guard                Guard          `json:"guard"`
}

// Tier is one tier's health.
type Tier struct {
	Name      string     `json:"name"`
	ReadOnly  bool       `json:"read_only"`
	Up        bool       `json:"up"`
	Stable    bool       `json:"stable"`
	Since     *time.Time `json:"since,omitempty"` // when Up last changed
	Failures  int        `json:"failures"`        // consecutive
	LastError string     `json:"last_error,omitempty"`
	LastOK    *time.Time `json:"last_ok,omitempty"`
	Pending   int        `json:"pending"`
}

// Service is one service's view.
type Service struct {
	Name          string     `json:"name"`
	Source        string     `json:"source"`
	Instances     int        `json:"instances"`
	Time          *time.Time `json:"time,omitempty"`
	AgeSeconds    float64    `json:"age_seconds"`
	Stale         bool       `json:"stale"`
	Held          bool       `json:"held"`
	HeldInstances int        `json:"held_instances,omitempty"`
	HeldSince     *time.Time `json:"held_since,omitempty"`
	HeldReads     int        `json:"held_reads,omitempty"`
	RolledBack    bool       `json:"rolled_back"`
	LastGood      *LastGood  `json:"last_good,omitempty"`
}

// LastGood is a service's last known good state.
type LastGood struct {
	Instances  int        `json:"instances"`
	Source     string     `json:"source"`
	Time       *time.Time `json:"time,omitempty"`
	AgeSeconds float64    `json:"age_seconds"`
}

// Registration is one of the chain's own registrations.
type Registration struct {
	Service   string     `json:"service"`
	ID        string     `json:"id"`
	Endpoints []string   `json:"endpoints"`
	Live      bool       `json:"live"`  // held by every writable tier
	Tiers     []string   `json:"tiers"` // the tiers that hold it now
	Since     *time.Time `json:"since,omitempty"`
	Attempts  int        `json:"attempts,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// Snapshot describes the chain's snapshot.
type Snapshot struct {
	Configured       bool       `json:"configured"`
	Services         int        `json:"services"`
	Serving          int        `json:"serving"`
	ServedAgeSeconds float64    `json:"served_age_seconds"`
	LastSave         *time.Time `json:"last_save,omitempty"`
	AgeSeconds       float64    `json:"age_seconds"`
	LastError        string     `json:"last_error,omitempty"`
	Commits          int64      `json:"commits"`
	Errors           int64      `json:"errors"`
}

// Switch is one change of a service's source.
type Switch struct {
	Time     time.Time `json:"time"`
	Service  string    `json:"service"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Failback bool      `json:"failback"`
}

// Guard counts what the empty-push protection did.
type Guard struct {
	Held      int64 `json:"held"`
	Confirmed int64 `json:"confirmed"`
	Discarded int64 `json:"discarded"`
	Released  int64 `json:"released"`
	Rollbacks int64 `json:"rollbacks"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// report builds the Report of st, taken at now.
func (h *Handler) report(st chain.Status, now time.Time) Report {
	r := Report{
		Now:                  now,
		Live:                 h.live(),
		Level:                st.Degradation.Level,
		LevelMeaning:         st.Degradation.Level.Meaning(),
		LevelReasons:         st.Degradation.Reasons,
		LevelSince:           tp(st.Degradation.Since),
		Frozen:               st.Frozen,
		Mutations:            h.mode(),
		Tiers:                []Tier{},
		Services:             []Service{},
		PendingRegistrations: st.PendingRegistrations,
		Registrations:        []Registration{},
		Recent:               []Switch{},
		Guard: Guard{Held: st.Guard.Held, Confirmed: st.Guard.Confirmed, Discarded: st.Guard.Discarded,
			Released: st.Guard.Released, Rollbacks: st.Guard.Rollbacks},
	}
	held := h.c.RegistrationTiers()
	r.NotReady = h.notReady(st, held)
	r.Ready = len(r.NotReady) == 0
	for _, t := range st.Tiers {
		r.Tiers = append(r.Tiers, Tier{Name: t.Name, ReadOnly: t.ReadOnly, Up: t.Up, Stable: t.Stable, Since: tp(t.Since),
			Failures: t.Failures, LastError: t.LastError, LastOK: tp(t.LastOK), Pending: t.Pending})
	}
	for _, s := range st.Services {
		sv := Service{Name: s.Name, Source: s.Source, Instances: s.Instances, Time: tp(s.Time), AgeSeconds: s.Age.Seconds(),
			Stale: s.Stale, Held: s.Held, HeldInstances: s.HeldInstances, HeldSince: tp(s.HeldSince), HeldReads: s.HeldReads,
			RolledBack: s.RolledBack}
		if g := s.LastGood; g.Instances > 0 {
			sv.LastGood = &LastGood{Instances: g.Instances, Source: g.Source, Time: tp(g.Time), AgeSeconds: now.Sub(g.Time).Seconds()}
		}
		r.Services = append(r.Services, sv)
	}
	for _, g := range st.Registrations {
		in := g.Instance
		reg := Registration{Service: in.Name, ID: in.ID, Endpoints: in.Endpoints, Live: g.Live, Tiers: held[in.Key()],
			Since: tp(g.Since), Attempts: g.Attempts}
		if reg.Tiers == nil {
			reg.Tiers = []string{}
		}
		if g.LastError != nil {
			reg.LastError = g.LastError.Error()
		}
		r.Registrations = append(r.Registrations, reg)
	}
	sn := st.Snapshot
	r.Snapshot = Snapshot{Configured: sn.Configured, Services: sn.Services, Serving: sn.Serving, ServedAgeSeconds: sn.ServedAge.Seconds(),
		LastSave: tp(sn.LastSave), AgeSeconds: sn.Age.Seconds(), LastError: sn.LastError, Commits: sn.Commits, Errors: sn.Errors}
	for _, sw := range st.Recent {
		r.Recent = append(r.Recent, Switch(sw))
	}
	return r
}
