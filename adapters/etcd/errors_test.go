package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/registry"
)

// Refusals that no retry changes wrap ErrInvalid (the chain does not
// replay them); a lost lease or a compaction is neither.
func TestRefusedClassification(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrPermissionDenied, true},
		{rpctypes.ErrAuthFailed, true},
		{rpctypes.ErrRequestTooLarge, true},
		{status.Error(codes.Unauthenticated, "bad token"), true},
		{fmt.Errorf("put: %w", rpctypes.ErrGRPCPermissionDenied), true},
		{rpctypes.ErrLeaseNotFound, false},
		{rpctypes.ErrCompacted, false},
		{rpctypes.ErrNoLeader, false},
		{errors.New("connection reset by peer"), false},
	}
	conn := &conn{}
	for _, c := range cases {
		if got := refused(c.err); got != c.want {
			t.Errorf("refused(%v) = %v, want %v", c.err, got, c.want)
		}
		if c.want {
			if err := conn.wrapErr(context.Background(), "put", c.err); !errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrUnavailable) {
				t.Errorf("wrapErr(%v) = %v, want ErrInvalid", c.err, err)
			}
		}
	}
}

func TestUnavailableClassification(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrTimeout, true},
		{rpctypes.ErrLeaseNotFound, false},
		{rpctypes.ErrPermissionDenied, false},
		{rpctypes.ErrRequestTooLarge, false},
		{rpctypes.ErrCompacted, false},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{status.Error(codes.Unauthenticated, "bad token"), false},
		{fmt.Errorf("put: %w", status.Error(codes.DeadlineExceeded, "slow")), true},
		{errors.New("connection reset by peer"), true},
	}
	for _, c := range cases {
		if got := unavailable(c.err); got != c.want {
			t.Errorf("unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
