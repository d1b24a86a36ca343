package microservice

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	mreg "go-micro.dev/v4/registry"
	"google.golang.org/protobuf/proto"

	"github.com/regchain/regchain/locality/nearest"
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

// RetryConfig configures Retry and AttemptTimeouts. The zero value is
// usable.
type RetryConfig struct {
	// Idempotent lists endpoints that may be sent again after a failure in
	// flight: "Greeter.Hello", or "Greeter." for every method of the
	// Greeter handler, of any service.
	Idempotent []string
	// AttemptTimeout bounds each attempt but the last of a call of an
	// Idempotent endpoint (AttemptTimeouts): an instance cut off silently
	// (packets dropped, no reset) then costs one attempt of this length,
	// and the call goes on to another node. The last attempt keeps
	// go-micro's own per-attempt timeout (CallOptions.ConnectionTimeout,
	// 5s by default) within the call's deadline. If zero, the timeout
	// adapts to the endpoint: 4 times the slowest of its recent successful
	// attempts, at least 100ms, none before 20 of them (package
	// locality/nearest, rule 8). If negative, none: every attempt has
	// go-micro's own.
	AttemptTimeout time.Duration
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

// AttemptTimeouts returns a go-micro client wrapper that gives each
// attempt but the last of a call of an idempotent endpoint a timeout of
// its own (RetryConfig.AttemptTimeout): the attempt then ends with
// go-micro's timeout error (408), which Retry sends to another node and
// the Selector counts against the node, while the abandoned attempt runs
// on until it answers or go-micro's own ConnectionTimeout ends it. Calls
// of other endpoints and streams are left as they are: a timed-out
// attempt of theirs could not be retried. Each attempt of a call it
// bounds decodes into a fresh value of the response's type, copied into
// the response when the attempt succeeds: go-micro returns from a
// timed-out attempt while the attempt's goroutine may still decode a late
// answer, which would otherwise race with the caller (and with the next
// attempt) on the response. Responses that are not non-nil pointers are
// left to go-micro. Nearest installs it.
func AttemptTimeouts(cfg RetryConfig) client.Wrapper {
	idem := append([]string(nil), cfg.Idempotent...)
	budget := nearest.NewAttemptBudget(cfg.AttemptTimeout)
	return func(c client.Client) client.Client {
		return &attemptClient{Client: c, idem: idem, budget: budget}
	}
}

type attemptClient struct {
	client.Client
	idem   []string
	budget *nearest.AttemptBudget
}

// Call implements client.Client.
func (c *attemptClient) Call(ctx context.Context, req client.Request, rsp any, opts ...client.CallOption) error {
	if req.Stream() || !c.budget.Bounded() || !idempotent(req.Endpoint(), c.idem) {
		return c.Client.Call(ctx, req, rsp, opts...)
	}
	if _, ok := fresh(rsp); !ok {
		return c.Client.Call(ctx, req, rsp, opts...)
	}
	op := req.Service() + " " + req.Endpoint()
	var (
		attempts atomic.Int32
		answer   atomic.Value // the response of the attempt that succeeded
	)
	bound := func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *mreg.Node, req client.Request, rsp any, o client.CallOptions) error {
			var d time.Duration
			if int(attempts.Add(1)) <= o.Retries { // not the last attempt
				d = c.budget.Timeout(op)
			}
			// go-micro returns from a timed-out attempt, and from a call
			// whose context ended, while the attempt's goroutines may
			// still decode a late answer: each attempt decodes into a
			// value of its own, copied into the caller's response by the
			// caller's goroutine once the call succeeded.
			own, _ := fresh(rsp)
			start := time.Now()
			err := attempt(d, func() error { return next(ctx, node, req, own, o) })
			if err == nil {
				answer.Store(&own)
				c.budget.Observe(op, time.Since(start))
			}
			return err
		}
	}
	err := c.Client.Call(ctx, req, rsp, append(opts, client.WithCallWrapper(bound))...)
	if v, ok := answer.Load().(*any); ok && err == nil {
		commit(rsp, *v)
	}
	return err
}

// attempt runs call and, when d > 0, gives up waiting for it after d with
// go-micro's timeout error (408), which Retry sends elsewhere and the
// Selector counts against the node. The attempt itself goes on, into its
// own response value, until go-micro's ConnectionTimeout ends it: giving
// up through a shorter ConnectionTimeout instead would make go-micro close
// the attempt's stream while its reader still uses it (a data race inside
// go-micro's client) every time an attempt is only slow.
func attempt(d time.Duration, call func() error) error {
	if d <= 0 {
		return call()
	}
	done := make(chan error, 1)
	go func() { done <- call() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return merrors.Timeout(idClient, "attempt given up after %v (regchain attempt timeout)", d)
	}
}

// fresh returns a new zero value of rsp's type for one attempt to decode
// into; ok is false for a response that is not a non-nil pointer.
func fresh(rsp any) (own any, ok bool) {
	if m, isProto := rsp.(proto.Message); isProto && m.ProtoReflect().IsValid() {
		return m.ProtoReflect().New().Interface(), true
	}
	v := reflect.ValueOf(rsp)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, false
	}
	return reflect.New(v.Elem().Type()).Interface(), true
}

// commit makes rsp a copy of own, a value fresh returned for it.
func commit(rsp, own any) {
	if m, isProto := rsp.(proto.Message); isProto {
		proto.Reset(m)
		proto.Merge(m, own.(proto.Message))
		return
	}
	reflect.ValueOf(rsp).Elem().Set(reflect.ValueOf(own).Elem())
}
