package microservice

import (
	"context"
	"errors"
	"strings"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
)

// go-micro's client error IDs.
const (
	idClient    = "go.micro.client"           // the client itself: connection errors, timeouts
	idTransport = "go.micro.client.transport" // a connection that broke while in use
)

// notSent reports a failure to connect: go-micro's client could not get
// a connection, so nothing was sent.
func notSent(e *merrors.Error) bool {
	return e.Id == idClient && strings.HasPrefix(e.Detail, "connection error")
}

// CallFailed tells how a finished attempt counts for the node it went to
// (rule 7 of package locality/nearest): ok is false for an attempt that
// counts for nothing (its caller cancelled it); failed is true when the
// node did not answer — no connection, a connection broken in flight
// (go-micro's "go.micro.client.transport" errors), a timeout (408) — or
// answered 502, 503 or 504. Any other error is the application's answer:
// a success.
func CallFailed(err error) (failed, ok bool) {
	if err == nil {
		return false, true
	}
	if errors.Is(err, context.Canceled) {
		return false, false
	}
	e := merrors.FromError(err)
	switch {
	case notSent(e), e.Id == idTransport:
		return true, true
	}
	switch e.Code {
	case 408, 502, 503, 504:
		return true, true
	}
	return false, true
}

// RetryConfig configures Retry. The zero value is usable.
type RetryConfig struct {
	// Idempotent lists endpoints that may be sent again after a failure in
	// flight: "Greeter.Hello", or "Greeter." for every method of the
	// Greeter handler, of any service.
	Idempotent []string
}

// Retry returns a go-micro client.RetryFunc that retries a failed call
// only when that is safe (see the package doc, "Retries"):
//
//	client.Retry(microservice.Retry(microservice.RetryConfig{Idempotent: []string{"Greeter.Hello"}}))
func Retry(cfg RetryConfig) client.RetryFunc {
	idem := append([]string(nil), cfg.Idempotent...)
	return func(ctx context.Context, req client.Request, _ int, err error) (bool, error) {
		if err == nil || ctx.Err() != nil {
			return false, nil
		}
		e := merrors.FromError(err)
		if notSent(e) {
			return true, nil
		}
		if req.Stream() || !idempotent(req.Endpoint(), idem) {
			return false, nil
		}
		failed, ok := CallFailed(err)
		return failed && ok, nil
	}
}

func idempotent(endpoint string, list []string) bool {
	for _, m := range list {
		if endpoint == m || (strings.HasSuffix(m, ".") && strings.HasPrefix(endpoint, m)) {
			return true
		}
	}
	return false
}

// Backoff is a client.BackoffFunc that waits nothing: a retry goes to
// another node, which the first one's failure does not make busier.
func Backoff(context.Context, client.Request, int) (time.Duration, error) { return 0, nil }
