package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/regchain/regchain/registry"
)

// ErrPermissionDenied is returned (wrapped, together with
// registry.ErrInvalid) when the API server refuses a request for the
// client's credentials: 401 (unknown or expired credentials) or 403 (RBAC
// forbids the verb on the resource). It is a configuration problem, not an
// outage: it does not match registry.ErrUnavailable, so the chain neither
// fails over on it nor replays a refused write, and a registration refused
// this way is not kept.
var ErrPermissionDenied = errors.New("kubernetes: permission denied")

// classify wraps an error of the API client with the sentinel it means:
//   - 401, 403: registry.ErrInvalid and ErrPermissionDenied;
//   - 429, 5xx (the API server up but its etcd down answers 500 or 504),
//     transport errors, timeouts: registry.ErrUnavailable;
//   - other 4xx (400, 404, 409, 422 ...): registry.ErrInvalid;
//   - a ctx cancelled by the caller: returned as it is (the caller gave up;
//     nothing says the API server is unreachable).
//
// Callers handle the statuses that mean something else to them (404 on a
// delete, 409 on a create or an update) before.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if code, ok := statusCode(err); ok {
		switch {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return fmt.Errorf("%w: %w: %w", registry.ErrInvalid, ErrPermissionDenied, err)
		case code == http.StatusTooManyRequests || code >= 500:
			return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
		case code >= 400:
			return fmt.Errorf("%w: %w", registry.ErrInvalid, err)
		}
	}
	return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
}

// statusCode returns the HTTP status of an API server's answer, if err is
// one.
func statusCode(err error) (int, bool) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return 0, false
	}
	code := int(st.Status().Code)
	return code, code != 0
}

// unavailable reports whether err means the API server could not be
// reached or could not answer (see classify).
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	return errors.Is(classify(err), registry.ErrUnavailable)
}
