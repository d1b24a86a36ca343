package etcd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
)

// A member without a leader refuses: withLeader sends again, marked
// require-leader each time, until one answers.
func TestWithLeaderRetriesRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		start := time.Now()
		err := withLeader(t.Context(), func(ctx context.Context) error {
			calls++
			md, _ := metadata.FromOutgoingContext(ctx)
			if got := md.Get(rpctypes.MetadataRequireLeaderKey); len(got) != 1 || got[0] != rpctypes.MetadataHasLeader {
				t.Errorf("call %d: require-leader metadata %v", calls, got)
			}
			if calls <= 3 {
				return fmt.Errorf("put: %w", rpctypes.ErrNoLeader)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls != 4 {
			t.Errorf("%d calls, want 4", calls)
		}
		if d := time.Since(start); d != 3*noLeaderRetry {
			t.Errorf("took %v, want %v", d, 3*noLeaderRetry)
		}
	})
}

// Other errors are not retried; a ctx that ends after refusals returns the
// refusal, which says why.
func TestWithLeaderStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		other := errors.New("permission denied")
		calls := 0
		err := withLeader(t.Context(), func(context.Context) error {
			calls++
			return other
		})
		if !errors.Is(err, other) || calls != 1 {
			t.Errorf("err %v after %d calls, want %v after 1", err, calls, other)
		}

		// Ends between two attempts (at 1s+25ms): calls at 0, 50ms, ..., 1s.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second+noLeaderRetry/2)
		defer cancel()
		calls = 0
		err = withLeader(ctx, func(context.Context) error {
			calls++
			return rpctypes.ErrNoLeader
		})
		if !isNoLeader(err) {
			t.Errorf("err %v, want no leader", err)
		}
		if want := int(time.Second/noLeaderRetry) + 1; calls != want {
			t.Errorf("%d calls, want %d", calls, want)
		}
	})
}
