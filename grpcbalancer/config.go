package grpcbalancer

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc/serviceconfig"

	"github.com/regchain/regchain/locality"
)

// Defaults of OutlierDetection; see the package doc for why.
const (
	DefaultConsecutiveFailures = 5
	DefaultFailurePercentage   = 50
	DefaultRequestVolume       = 10
	DefaultInterval            = time.Second
	DefaultBaseEjectionTime    = 10 * time.Second
	DefaultMaxEjectionTime     = 5 * time.Minute
	DefaultMaxEjectionPercent  = 50
)

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
// package doc). A zero field takes its default.
type OutlierDetection struct {
	// Disabled turns ejection off.
	Disabled bool `json:"disabled,omitempty"`
	// ConsecutiveFailures ejects an endpoint whose last this many calls
	// failed. If zero, 5.
	ConsecutiveFailures int `json:"consecutiveFailures,omitempty"`
	// FailurePercentage ejects an endpoint with at least this share (1 to
	// 100) of failed calls in an Interval. If zero, 50.
	FailurePercentage int `json:"failurePercentage,omitempty"`
	// RequestVolume is the least number of calls in an Interval for the
	// failure percentage to count. If zero, 10.
	RequestVolume int `json:"requestVolume,omitempty"`
	// Interval is how often failure percentages are judged and ejection
	// multipliers decay. If zero, 1s.
	Interval Duration `json:"interval,omitempty"`
	// BaseEjectionTime is the first ejection's length; the nth consecutive
	// one lasts n times as long. If zero, 10s.
	BaseEjectionTime Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionTime caps an ejection's length (never below
	// BaseEjectionTime). If zero, 5m.
	MaxEjectionTime Duration `json:"maxEjectionTime,omitempty"`
	// MaxEjectionPercent: no endpoint is ejected while this share (1 to
	// 100) of the endpoints or more are. If zero, 50.
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

// outlierConfig is OutlierDetection with its defaults applied.
type outlierConfig struct {
	disabled            bool
	consecutiveFailures int
	failurePercentage   int
	requestVolume       int
	interval            time.Duration
	baseEjection        time.Duration
	maxEjection         time.Duration
	maxEjectionPercent  int
}

func (o *OutlierDetection) resolve() (outlierConfig, error) {
	var in OutlierDetection
	if o != nil {
		in = *o
	}
	c := outlierConfig{
		disabled:            in.Disabled,
		consecutiveFailures: orInt(in.ConsecutiveFailures, DefaultConsecutiveFailures),
		failurePercentage:   orInt(in.FailurePercentage, DefaultFailurePercentage),
		requestVolume:       orInt(in.RequestVolume, DefaultRequestVolume),
		interval:            orDur(in.Interval, DefaultInterval),
		baseEjection:        orDur(in.BaseEjectionTime, DefaultBaseEjectionTime),
		maxEjection:         orDur(in.MaxEjectionTime, DefaultMaxEjectionTime),
		maxEjectionPercent:  orInt(in.MaxEjectionPercent, DefaultMaxEjectionPercent),
	}
	switch {
	case c.consecutiveFailures < 0, c.requestVolume < 0:
		return c, fmt.Errorf("outlierDetection: consecutiveFailures and requestVolume must not be negative")
	case c.failurePercentage < 0 || c.failurePercentage > 100:
		return c, fmt.Errorf("outlierDetection: failurePercentage %d is not within 1..100", c.failurePercentage)
	case c.maxEjectionPercent < 0 || c.maxEjectionPercent > 100:
		return c, fmt.Errorf("outlierDetection: maxEjectionPercent %d is not within 1..100", c.maxEjectionPercent)
	case c.interval < 0 || c.baseEjection < 0 || c.maxEjection < 0:
		return c, fmt.Errorf("outlierDetection: durations must not be negative")
	}
	c.maxEjection = max(c.maxEjection, c.baseEjection)
	return c, nil
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v Duration, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return time.Duration(v)
}

// parsed is a Config checked and completed by ParseConfig.
type parsed struct {
	serviceconfig.LoadBalancingConfig
	self    locality.Locality
	outlier outlierConfig
}

func parseConfig(js json.RawMessage) (*parsed, error) {
	var c Config
	if len(js) > 0 && string(js) != "null" {
		if err := json.Unmarshal(js, &c); err != nil {
			return nil, fmt.Errorf("%s: config: %w", Name, err)
		}
	}
	od, err := c.OutlierDetection.resolve()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	self := locality.Locality{Zone: c.Zone, Region: c.Region}
	env := locality.FromEnv()
	if self.Zone == "" {
		self.Zone = env.Zone
	}
	if self.Region == "" {
		self.Region = env.Region
	}
	return &parsed{self: self, outlier: od}, nil
}

// ServiceConfig returns a service config JSON that selects the policy with
// cfg. It is a convenience for grpc.WithDefaultServiceConfig or a
// resolver's state.
func ServiceConfig(cfg Config) string {
	b, _ := json.Marshal(map[string]any{"loadBalancingConfig": []any{map[string]Config{Name: cfg}}}) // cannot fail: plain fields
	return string(b)
}
