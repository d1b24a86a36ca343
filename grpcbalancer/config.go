package grpcbalancer

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc/serviceconfig"

	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/locality/nearest"
)

// DefaultMaxEjectionPercent is OutlierDetection.MaxEjectionPercent's
// default: gRFC A50's cap (10 % there), raised so that both instances of a
// two-instance zone can go while another zone serves. The other defaults
// are package locality/nearest's, the rule every client door of regchain
// shares.
const DefaultMaxEjectionPercent = 50

// Config is the policy's load balancing config, the JSON object under Name
// in a service config's loadBalancingConfig. The zero Config is valid.
type Config struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// Zone and Region are the client's place. If empty, REGCHAIN_ZONE and
	// REGCHAIN_REGION.
	Zone   string `json:"zone,omitempty"`
	Region string `json:"region,omitempty"`
	// OutlierDetection configures ejection; if nil, the defaults.
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
}

// OutlierDetection configures the ejection of failing endpoints (see the
// package doc and package locality/nearest, whose rule applies). A zero
// field takes its default.
type OutlierDetection struct {
	// Disabled turns ejection off.
	Disabled bool `json:"disabled,omitempty"`
	// ConsecutiveFailures ejects an endpoint whose last this many calls
	// failed. If zero, nearest.DefaultConsecutiveFailures (3).
	ConsecutiveFailures int `json:"consecutiveFailures,omitempty"`
	// FailurePercentage ejects an endpoint with at least this share (1 to
	// 100) of failed calls in an Interval. If zero,
	// nearest.DefaultFailurePercentage (50).
	FailurePercentage int `json:"failurePercentage,omitempty"`
	// RequestVolume is the least number of calls in an Interval for the
	// failure percentage to count. If zero, nearest.DefaultRequestVolume
	// (10).
	RequestVolume int `json:"requestVolume,omitempty"`
	// Interval is the failure percentage's window. If zero,
	// nearest.DefaultInterval (1s).
	Interval Duration `json:"interval,omitempty"`
	// BaseEjectionTime is the first ejection's length; each further one
	// since the endpoint last answered doubles it. If zero,
	// nearest.DefaultBaseEjectionTime (5s).
	BaseEjectionTime Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionTime caps an ejection's length (never below
	// BaseEjectionTime). If zero, nearest.DefaultMaxEjectionTime (1m).
	MaxEjectionTime Duration `json:"maxEjectionTime,omitempty"`
	// MaxEjectionPercent: at most this share (1 to 100) of the READY
	// endpoints count as ejected. If zero, DefaultMaxEjectionPercent (50).
	MaxEjectionPercent int `json:"maxEjectionPercent,omitempty"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("1.5s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"1.5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// resolve checks o and returns its nearest.Ejection (defaults are
// nearest's, but for the max ejection percent) and whether ejection is
// off.
func (o *OutlierDetection) resolve() (ej nearest.Ejection, disabled bool, err error) {
	var in OutlierDetection
	if o != nil {
		in = *o
	}
	switch {
	case in.ConsecutiveFailures < 0, in.RequestVolume < 0:
		return ej, false, fmt.Errorf("outlierDetection: consecutiveFailures and requestVolume must not be negative")
	case in.FailurePercentage < 0 || in.FailurePercentage > 100:
		return ej, false, fmt.Errorf("outlierDetection: failurePercentage %d is not within 1..100", in.FailurePercentage)
	case in.MaxEjectionPercent < 0 || in.MaxEjectionPercent > 100:
		return ej, false, fmt.Errorf("outlierDetection: maxEjectionPercent %d is not within 1..100", in.MaxEjectionPercent)
	case in.Interval < 0 || in.BaseEjectionTime < 0 || in.MaxEjectionTime < 0:
		return ej, false, fmt.Errorf("outlierDetection: durations must not be negative")
	}
	ej = nearest.Ejection{
		ConsecutiveFailures: in.ConsecutiveFailures,
		FailurePercentage:   in.FailurePercentage,
		RequestVolume:       in.RequestVolume,
		Interval:            time.Duration(in.Interval),
		BaseTime:            time.Duration(in.BaseEjectionTime),
		MaxTime:             time.Duration(in.MaxEjectionTime),
		MaxEjectionPercent:  in.MaxEjectionPercent,
	}
	if ej.MaxEjectionPercent == 0 {
		ej.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	return ej, in.Disabled, nil
}

// parsed is a Config checked and completed by ParseConfig.
type parsed struct {
	serviceconfig.LoadBalancingConfig
	self     locality.Locality
	ejection nearest.Ejection
	disabled bool // no ejection
}

func parseConfig(js json.RawMessage) (*parsed, error) {
	var c Config
	if len(js) > 0 && string(js) != "null" {
		if err := json.Unmarshal(js, &c); err != nil {
			return nil, fmt.Errorf("%s: config: %w", Name, err)
		}
	}
	ej, disabled, err := c.OutlierDetection.resolve()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	self := locality.Locality{Zone: c.Zone, Region: c.Region}.OrEnv()
	return &parsed{self: self, ejection: ej, disabled: disabled}, nil
}

// ServiceConfig returns a service config JSON that selects the policy with
// cfg. It is a convenience for grpc.WithDefaultServiceConfig or a
// resolver's state.
func ServiceConfig(cfg Config) string {
	b, _ := json.Marshal(map[string]any{"loadBalancingConfig": []any{map[string]Config{Name: cfg}}}) // cannot fail: plain fields
	return string(b)
}
