package consul

import (
	"errors"
	"testing"
	"time"

	"github.com/regchain/regchain/registry"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TTL != DefaultTTL || cfg.DeregisterCriticalServiceAfter != DefaultDeregisterCriticalServiceAfter ||
		cfg.WaitTime != DefaultWaitTime || cfg.Timeout != DefaultTimeout || cfg.Logger == nil {
		t.Errorf("defaults = %+v", cfg)
	}
	for _, bad := range []Config{
		{TTL: MinTTL / 2},
		{WaitTime: MaxWaitTime + 1},
		{WaitTime: -1},
		{DeregisterCriticalServiceAfter: -1},
		{Timeout: -1},
	} {
		if _, err := New(bad); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("New(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

// TestConfigDeprecatedNames: RequestTimeout, Timeout's former name, still
// works; both set differently is an error.
func TestConfigDeprecatedNames(t *testing.T) {
	cfg, err := Config{RequestTimeout: 3 * time.Second}.withDefaults()
	if err != nil || cfg.Timeout != 3*time.Second {
		t.Errorf("RequestTimeout 3s: Timeout %v, %v; want 3s", cfg.Timeout, err)
	}
	if _, err := New(Config{Timeout: time.Second, RequestTimeout: 2 * time.Second}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("Timeout and RequestTimeout set differently: %v, want ErrInvalid", err)
	}
}
