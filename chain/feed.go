package chain

import (
	"context"
	"fmt"
	"sync"

	"github.com/regchain/regchain/registry"
)

// newFeed returns a registry.Feed that ends when ctx is done and then calls
// onStop with itself. It ties the feed to ctx itself rather than through
// registry.NewFeed, whose onStop may run before NewFeed returns (ctx done
// already) and so cannot be handed the feed.
func newFeed(ctx context.Context, onStop func(*registry.Feed)) *registry.Feed {
	var (
		mu   sync.Mutex
		stop func() bool
		f    *registry.Feed
	)
	f = registry.NewFeed(context.Background(), func() {
		mu.Lock()
		s := stop
		mu.Unlock()
		if s != nil {
			s()
		}
		onStop(f)
	})
	end := func() { f.End(fmt.Errorf("%w: %w", registry.ErrStopped, context.Cause(ctx))) }
	s := context.AfterFunc(ctx, end)
	mu.Lock()
	stop = s
	mu.Unlock()
	if ctx.Err() != nil {
		end() // done already: end before anyone can read it
	}
	return f
}
