package etcd

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// noLeaderRetry is the pause before sending again a request that a member
// without a leader refused.
const noLeaderRetry = 50 * time.Millisecond

// withLeader runs call with ctx marked clientv3.WithRequireLeader, so that
// a member cut off from its cluster's leader refuses it at once
// (rpctypes.ErrNoLeader) instead of holding it until ctx's deadline. A
// refused request is sent again (the client's round-robin balancer routes
// it to the next member) until a member with a leader answers, another
// error comes back or ctx ends. When ctx ends after a refusal, the refusal
// is returned: it says why.
func withLeader(ctx context.Context, call func(context.Context) error) error {
	lctx := clientv3.WithRequireLeader(ctx)
	var timer *time.Timer
	for {
		err := call(lctx)
		if err == nil || !isNoLeader(err) {
			return err
		}
		if timer == nil {
			timer = time.NewTimer(noLeaderRetry)
			defer timer.Stop()
		} else {
			timer.Reset(noLeaderRetry)
		}
		select {
		case <-ctx.Done():
			return err
		case <-timer.C:
		}
	}
}

// isNoLeader reports whether err is a member's refusal for lack of a leader.
func isNoLeader(err error) bool {
	return errors.Is(err, rpctypes.ErrNoLeader)
}
