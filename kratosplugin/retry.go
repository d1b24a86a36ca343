package kratosplugin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	"github.com/go-kratos/kratos/v2/middleware"
	"github.com/go-kratos/kratos/v2/transport"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/locality/nearest"
)

// DefaultRetryAttempts is RetryConfig.Attempts' default.
const DefaultRetryAttempts = 3

// HealthCheck is the operation of grpc-go's health service, which is
// always idempotent.
const HealthCheck = "/grpc.health.v1.Health/Check"

// RetryConfig configures Retry. The zero value is usable.
type RetryConfig struct {
	// Attempts bounds the attempts of one call, the first included. If
	// zero, DefaultRetryAttempts; 1 turns retries off.
	Attempts int
	// AttemptTimeout bounds each attempt but the last of a call that may
	// be sent again after a timeout (see "Retries" in the package doc):
	// an instance cut off silently (packets dropped, no reset) then costs
	// one attempt of this length instead of the whole call, and the call
	// goes on to another instance. The last attempt keeps the rest of the
	// call's deadline (Kratos' client timeout, 2s by default). If zero,
	// the timeout adapts to the operation: 4 times the slowest of its
	// recent successful attempts, at least 100ms, none before 20 of them
	// (package locality/nearest, rule 8). If negative, none: every
	// attempt has the call's deadline.
	AttemptTimeout time.Duration
	// Idempotent lists gRPC operations that may be sent again after a
	// failure in flight: a full method "/pkg.Service/Method", or
	// "/pkg.Service/" for every method of a service. HealthCheck is always
	// included. Methods whose proto declares idempotency_level
	// IDEMPOTENT or NO_SIDE_EFFECTS belong here.
	Idempotent []string
}

// Retry returns a Kratos client middleware that sends a failed call again,
// to an instance the call has not tried yet, when that is safe (see the
// package doc, "Retries"). Put it last in the client's middleware, so the
// other middleware sees one call:
//
//	grpc.DialInsecure(ctx, grpc.WithEndpoint("discovery:///greeter"), grpc.WithDiscovery(reg),
//		grpc.WithMiddleware(kratosplugin.Retry(kratosplugin.RetryConfig{})))
//	http.NewClient(ctx, http.WithEndpoint("discovery:///greeter"), http.WithDiscovery(reg),
//		http.WithMiddleware(kratosplugin.Retry(kratosplugin.RetryConfig{})))
//
// Attempts go to other instances only under a Selector (NewSelector);
// under another selector a retry may go back to the same instance.
func Retry(cfg RetryConfig) middleware.Middleware {
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultRetryAttempts
	}
	idem := append([]string{HealthCheck}, cfg.Idempotent...)
	budget := nearest.NewAttemptBudget(cfg.AttemptTimeout)
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, req any) (any, error) {
			ctx, tried := nearest.WithTried(ctx)
			op := operation(ctx)
			bounded := cfg.Attempts > 1 && budget.Bounded() && retrySafe(ctx, context.DeadlineExceeded, true, idem)
			for attempt := 1; ; attempt++ {
				picked := tried.Len()
				var d time.Duration // the last attempt keeps the rest of the call's deadline
				if bounded && attempt < cfg.Attempts {
					d = budget.Timeout(op)
				}
				start := time.Now()
				reply, timedOut, err := callAttempt(ctx, d, next, req)
				if err == nil {
					budget.Observe(op, time.Since(start))
				}
				if err == nil || attempt >= cfg.Attempts || ctx.Err() != nil || tried.Len() == picked {
					// Done, out of attempts, out of time, or no instance was
					// picked (nothing to go around).
					return reply, err
				}
				if !retrySafe(ctx, err, timedOut, idem) {
					return reply, err
				}
			}
		}
	}
}

// operation names a call for its attempt timeouts: the client's endpoint
// and the operation.
func operation(ctx context.Context) string {
	tr, ok := transport.FromClientContext(ctx)
	if !ok {
		return ""
	}
	op := tr.Operation()
	if ht, ok := tr.(interface{ Request() *http.Request }); ok && op == "" && ht.Request() != nil {
		op = ht.Request().Method + " " + ht.Request().URL.Path
	}
	return tr.Endpoint() + " " + op
}

// callAttempt runs one attempt, under its own deadline when d > 0;
// timedOut reports that this deadline, not the call's, ended it.
func callAttempt(ctx context.Context, d time.Duration, next middleware.Handler, req any) (reply any, timedOut bool, err error) {
	if d <= 0 {
		reply, err = next(ctx, req)
		return reply, false, err
	}
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	reply, err = next(actx, req)
	// A gRPC server enforces the attempt's deadline too (it travels in the
	// call's timeout header) and may answer DEADLINE_EXCEEDED a moment
	// before the client's own timer fires.
	timedOut = err != nil && ctx.Err() == nil && (actx.Err() != nil || status.Code(err) == codes.DeadlineExceeded)
	return reply, timedOut, err
}

// retrySafe reports whether a call that failed with err may be sent
// again: nothing of it reached the server, or sending it twice does no
// harm and the failure is one another instance may not have.
func retrySafe(ctx context.Context, err error, timedOut bool, idempotent []string) bool {
	tr, ok := transport.FromClientContext(ctx)
	if !ok {
		return false
	}
	switch tr.Kind() {
	case transport.KindHTTP:
		ht, ok := tr.(interface{ Request() *http.Request })
		if !ok || ht.Request() == nil {
			return false
		}
		r := ht.Request()
		if notSent(err) {
			return true // the body, if any, was not read
		}
		hasBody := r.Body != nil && r.Body != http.NoBody
		return !hasBody && idempotentHTTP(r) && (timedOut || gatewayFailure(err))
	case transport.KindGRPC:
		if !nearest.MatchMethod(tr.Operation(), idempotent) {
			return false
		}
		if timedOut {
			return true
		}
		st, ok := status.FromError(err)
		return ok && st.Code() == codes.Unavailable
	}
	return false
}

// notSent reports whether err is a failure to connect: the request never
// left the client.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// gatewayFailure reports an HTTP attempt that got no answer from the
// application: a transport error, or 502, 503, 504.
func gatewayFailure(err error) bool {
	var ke *kerrors.Error
	if errors.As(err, &ke) {
		return ke.Code == 502 || ke.Code == 503 || ke.Code == 504
	}
	return !errors.Is(err, context.Canceled)
}

// idempotentHTTP: the methods RFC 9110 (section 9.2.2) makes idempotent,
// and requests carrying an Idempotency-Key, as net/http's own retries.
func idempotentHTTP(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}
