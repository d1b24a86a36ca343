package grpcbalancer

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/locality/nearest"
)

// DefaultRetryAttempts is RetryConfig.Attempts' default.
const DefaultRetryAttempts = 3

// HealthCheck is the method of grpc-go's health service, which is always
// idempotent.
const HealthCheck = "/grpc.health.v1.Health/Check"

// RetryConfig configures Retry. The zero value is usable.
type RetryConfig struct {
	// Attempts bounds the attempts of one call, the first included. If
	// zero, DefaultRetryAttempts; 1 turns retries off.
	Attempts int
	// AttemptTimeout bounds each attempt but the last of an idempotent
	// call: an endpoint cut off silently (packets dropped, no reset, its
	// connection still READY) then costs one attempt of this length
	// instead of the whole call, and the call goes on to an endpoint it
	// has not tried. The last attempt keeps the rest of the call's
	// deadline. If zero, the timeout adapts to the method: 4 times the
	// slowest of its recent successful attempts, at least 100ms, none
	// before 20 of them (package locality/nearest, rule 8). If negative,
	// none: every attempt has the call's deadline.
	AttemptTimeout time.Duration
	// Idempotent lists the methods that may be sent again after a failure
	// in flight: a full method "/pkg.Service/Method", or "/pkg.Service/"
	// for every method of a service. HealthCheck is always included.
	// Methods whose proto declares idempotency_level IDEMPOTENT or
	// NO_SIDE_EFFECTS belong here. Other methods are not retried by
	// Retry at all (grpc-go's own retries still apply to them).
	Idempotent []string
}

// Retry returns a dial option that retries the unary calls of idempotent
// methods (RetryConfig.Idempotent), each attempt at an endpoint the call
// has not tried yet (the policy of this package reads the call's
// nearest.Tried record), when an attempt failed in a way another endpoint
// may not: UNAVAILABLE, or its own attempt timeout. That covers what
// grpc-go's retries cannot: a call in flight when its connection died after
// the server got it (committed, for grpc-go), and an endpoint that stopped
// answering without closing its connection, which no connection state
// shows and grpc-go would wait on until the call's deadline.
//
//	conn, err := grpc.NewClient("regchain:///greeter", grpc.WithResolvers(builder),
//		grpcbalancer.Retry(grpcbalancer.RetryConfig{Idempotent: []string{"/greeter.Greeter/"}}))
//
// Sending a call again is safe only because the method is idempotent: the
// server may have run the first attempt.
func Retry(cfg RetryConfig) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(RetryInterceptor(cfg))
}

// RetryInterceptor is Retry's interceptor, for a chain of interceptors of
// your own.
func RetryInterceptor(cfg RetryConfig) grpc.UnaryClientInterceptor {
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultRetryAttempts
	}
	idem := append([]string{HealthCheck}, cfg.Idempotent...)
	budget := nearest.NewAttemptBudget(cfg.AttemptTimeout)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if cfg.Attempts <= 1 || !nearest.MatchMethod(method, idem) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		ctx, _ = nearest.WithTried(ctx)
		op := cc.Target() + " " + method
		for attempt := 1; ; attempt++ {
			var d time.Duration // the last attempt keeps the rest of the call's deadline
			if attempt < cfg.Attempts {
				d = budget.Timeout(op)
			}
			start := time.Now()
			timedOut, err := invokeAttempt(ctx, d, method, req, reply, cc, invoker, opts)
			if err == nil {
				budget.Observe(op, time.Since(start))
				return nil
			}
			if attempt >= cfg.Attempts || ctx.Err() != nil {
				return err
			}
			if !timedOut && status.Code(err) != codes.Unavailable {
				return err // an answer: another endpoint would give it too
			}
		}
	}
}

// invokeAttempt runs one attempt, under its own deadline when d > 0;
// timedOut reports that this deadline, not the call's, ended it. A reply
// of an abandoned attempt is not written later: grpc-go's Invoke returns
// only once the attempt's stream is done with it.
func invokeAttempt(ctx context.Context, d time.Duration, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) (timedOut bool, err error) {
	if d <= 0 {
		return false, invoker(ctx, method, req, reply, cc, opts...)
	}
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err = invoker(actx, method, req, reply, cc, opts...)
	// The server enforces the attempt's deadline too (it travels in the
	// call's timeout header) and may answer DEADLINE_EXCEEDED a moment
	// before the client's own timer fires.
	timedOut = err != nil && ctx.Err() == nil && (actx.Err() != nil || status.Code(err) == codes.DeadlineExceeded)
	return timedOut, err
}
