package grpcresolver

import (
	"encoding/json"

	"github.com/regchain/regchain/grpcbalancer"
	"github.com/regchain/regchain/locality"
)

// retryPolicy is the default service config's method config; the package
// documentation says why each value is what it is.
var retryPolicy = map[string]any{
	"methodConfig": []any{map[string]any{
		"name": []any{map[string]any{}}, // every method
		"retryPolicy": map[string]any{
			"maxAttempts":          3,
			"initialBackoff":       "0.05s",
			"maxBackoff":           "0.1s",
			"backoffMultiplier":    2,
			"retryableStatusCodes": []string{"UNAVAILABLE"},
		},
	}},
	"retryThrottling": map[string]any{"maxTokens": 100, "tokenRatio": 0.1},
}

// serviceConfigs are the service configs a Builder's resolvers send: the
// JSON for states whose instances carry locality, and for those that do
// not; "" sends none.
type serviceConfigs struct {
	withLocality, without string
}

func newServiceConfigs(custom *string, self *locality.Locality) serviceConfigs {
	if custom != nil {
		return serviceConfigs{withLocality: *custom, without: *custom}
	}
	var cfg grpcbalancer.Config
	if self != nil {
		cfg.Zone, cfg.Region = self.Zone, self.Region
	}
	return serviceConfigs{
		withLocality: defaultServiceConfig(map[string]any{grpcbalancer.Name: cfg}),
		without:      defaultServiceConfig(map[string]any{"round_robin": map[string]any{}}),
	}
}

func defaultServiceConfig(lb map[string]any) string {
	sc := map[string]any{"loadBalancingConfig": []any{lb}}
	for k, v := range retryPolicy {
		sc[k] = v
	}
	b, err := json.Marshal(sc)
	if err != nil {
		panic("grpcresolver: default service config: " + err.Error()) // plain values: cannot happen
	}
	return string(b)
}

// pick returns the service config for a state; hasLocality says whether
// any of its instances carries a zone or region.
func (s serviceConfigs) pick(hasLocality bool) string {
	if hasLocality {
		return s.withLocality
	}
	return s.without
}
