package microplugin

import (
	"errors"
	"fmt"
	"sync/atomic"

	"go-micro.dev/v4/logger"
	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// Watcher is a go-micro registry.Watcher over a regchain watcher. It diffs
// the full states regchain delivers into go-micro's per-node results:
// "create" for a new node (all nodes of a service on the first state),
// "update" for a changed one, "delete" for a removed one, each Result
// carrying the nodes of one service version. All results of one state are
// queued, so nothing is lost when several nodes change at once. Create it
// with Registry.Watch.
//
// Next is meant for one goroutine; Stop may be called from any goroutine,
// any number of times.
type Watcher struct {
	w       registry.Watcher
	service string // "" for every service
	log     logger.Logger
	stopped atomic.Bool

	// Used by Next's goroutine only.
	diff  differ
	queue []*mreg.Result
}

var _ mreg.Watcher = (*Watcher)(nil)

// Next implements go-micro's registry.Watcher. It blocks until there is a
// result. After Stop it returns go-micro's registry.ErrWatcherStopped
// itself; when the Watch context is done or the backend is closed, an error
// matching registry.ErrWatcherStopped and the cause. A transient backend
// error is logged and not returned: regchain's watcher retries by itself and
// its next state is diffed against the last one, so no removal is missed,
// whereas go-micro's cache would drop the watcher on an error and miss the
// removals made until it watches again.
func (w *Watcher) Next() (*mreg.Result, error) {
	for {
		if w.stopped.Load() {
			return nil, mreg.ErrWatcherStopped
		}
		if len(w.queue) > 0 {
			r := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			return r, nil
		}
		u, err := w.w.Next()
		if err != nil {
			if w.stopped.Load() {
				return nil, mreg.ErrWatcherStopped
			}
			if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
				return nil, fmt.Errorf("regchain: %w: %w", mreg.ErrWatcherStopped, err)
			}
			w.log.Logf(logger.WarnLevel, "regchain: watch %s: %v (the watcher retries)", registry.Quote(w.service), err)
			continue
		}
		results, problems := w.diff.apply(u)
		for _, err := range problems {
			w.log.Logf(logger.WarnLevel, "regchain: watch %s: %v", registry.Quote(w.service), err)
		}
		w.queue = append(w.queue, results...)
	}
}

// Stop implements go-micro's registry.Watcher: it ends the watcher and
// unblocks a pending Next.
func (w *Watcher) Stop() {
	w.stopped.Store(true)
	_ = w.w.Stop()
}
