package consul

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/regchain/regchain/registry"
)

// ErrPermissionDenied is returned (wrapped, together with
// registry.ErrInvalid) when Consul refuses a request for its ACL token: the
// token does not exist ("ACL not found") or lacks a permission. It is a
// configuration problem, not an outage, so it does not match
// registry.ErrUnavailable and the chain does not fail over on it.
var ErrPermissionDenied = errors.New("consul: permission denied by ACL")

// classify wraps an error of the Consul API with the sentinel it means:
//   - 401, 403: registry.ErrInvalid and ErrPermissionDenied;
//   - 429, 5xx, transport errors, timeouts: registry.ErrUnavailable;
//   - other 4xx: registry.ErrInvalid;
//   - a ctx cancelled by the caller: returned as it is (the caller gave up;
//     nothing says the agent is unreachable).
//
// 404 means different things per endpoint: callers handle it before.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var se consulapi.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden:
			return fmt.Errorf("%w: %w: %w", registry.ErrInvalid, ErrPermissionDenied, err)
		case se.Code == http.StatusTooManyRequests || se.Code >= 500:
			return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
		default:
			return fmt.Errorf("%w: %w", registry.ErrInvalid, err)
		}
	}
	return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
}

// isStatus reports whether err is an answer of the agent with HTTP status code.
func isStatus(err error, code int) bool {
	var se consulapi.StatusError
	return errors.As(err, &se) && se.Code == code
}
