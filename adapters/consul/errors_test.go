package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/registry"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err                          error
		unavailable, invalid, denied bool
	}{
		{consulapi.StatusError{Code: 403, Body: "ACL not found"}, false, true, true},
		{consulapi.StatusError{Code: 500, Body: "No cluster leader"}, true, false, false},
		{consulapi.StatusError{Code: 429, Body: "rate limited"}, true, false, false},
		{consulapi.StatusError{Code: 400, Body: "bad"}, false, true, false},
		{fmt.Errorf("wrapped: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true, false, false},
		{&url.Error{Op: "Get", URL: "http://127.0.0.1:8500/v1/health/service/x", Err: context.DeadlineExceeded}, true, false, false},
		// The caller gave up: not an outage the chain should fail over on.
		{&url.Error{Op: "Get", URL: "http://127.0.0.1:8500/v1/health/service/x", Err: context.Canceled}, false, false, false},
	}
	for _, c := range cases {
		got := classify(c.err)
		if errors.Is(got, registry.ErrUnavailable) != c.unavailable || errors.Is(got, registry.ErrInvalid) != c.invalid || errors.Is(got, ErrPermissionDenied) != c.denied {
			t.Errorf("classify(%v) = %v; want unavailable %v, invalid %v, denied %v", c.err, got, c.unavailable, c.invalid, c.denied)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("classify(%v) lost the cause", c.err)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
