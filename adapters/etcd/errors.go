package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/registry"
)

// What the registry's goroutines report: to Registrations (a keeper), to
// watchers and in logs (the watch).
var (
	errHistoryChanged = errors.New("etcd came back with another history (wiped or restored from a snapshot); checking the record")
	errLeaseLost      = errors.New("lease keepalive ended (lease expired, revoked or unreachable)")
	errKeyTampered    = errors.New("key deleted or overwritten by another client")

	errWatchClosed = errors.New("watch channel closed")
	errConnLost    = errors.New("connection to etcd lost")
	errIdle        = errors.New("no watcher left")
	errNoConfirm   = errors.New("states not confirmed after the connection came back")
	// errResync ends a follow so that the namespace is listed at once: a
	// watch-all came, or too many services to read one by one.
	errResync = errors.New("listing the namespace for new watchers")
)

// classify describes a failed request of operation op, for a registry that
// is not closed and a caller that did not give up (see conn.wrapErr).
// Errors meaning etcd could not be reached or did not answer in time wrap
// ErrUnavailable; etcd's refusals for the credentials or the request itself
// (permission denied, authentication failed, a request too large) wrap
// ErrInvalid, as no retry would change them; other answers (a lost lease, a
// compacted revision) are returned as they are.
func classify(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("etcd: %s: %w: %w", op, registry.ErrUnavailable, err)
	}
	if refused(err) {
		return fmt.Errorf("etcd: %s: %w: %w", op, registry.ErrInvalid, err)
	}
	return fmt.Errorf("etcd: %s: %w", op, err)
}

// refused reports whether err is etcd refusing the request for its
// credentials or its content: permission denied, authentication failed, a
// request too large or otherwise invalid.
func refused(err error) bool {
	switch code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument:
		return true
	}
	return false
}

// code returns the gRPC code of an etcd error, codes.Unknown for other
// errors.
func code(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// unavailable reports whether err means etcd was unreachable, leaderless or
// too slow, as opposed to a refusal that retrying elsewhere would not fix
// differently.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	} else {
		return !errors.Is(err, context.Canceled)
	}
	switch code {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated,
		codes.FailedPrecondition, codes.NotFound, codes.OutOfRange, codes.AlreadyExists,
		codes.OK:
		return false
	}
	return true
}
