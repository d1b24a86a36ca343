package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/regchain/regchain/internal/signal"
	"github.com/regchain/regchain/registry"
)

// conn is the registry's link to etcd, shared by its reads, its keepers and
// its watch: the client and the bounds of its requests, the history
// followed through the headers of etcd's answers (see "History changes" in
// the package doc), what is known of the client's connection, and the
// registry's own context and goroutines.
//
// conn is safe for concurrent use.
type conn struct {
	client     *clientv3.Client
	ns         string // the namespace key: Ping and history confirmations read it
	timeout    time.Duration
	maxBackoff time.Duration
	log        *slog.Logger

	ctx    context.Context // the registry's own: keepers and the watch run on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the registry started (spawn)

	lastAnswer atomic.Int64     // unix nanos of the last answer observed
	ready      atomic.Bool      // the client's connection is ready (Registry.monitorConn)
	grpcConn   *grpc.ClientConn // the client's connection when its state is followed, else nil
	// failedSinceReady: the connection went through TRANSIENT_FAILURE since
	// it was last ready (set by failing and the monitor, cleared at READY).
	failedSinceReady atomic.Bool

	hist           history       // the identity of the history etcd serves
	historyChanged signal.Signal // fired when etcd came back with another history
	reconnected    signal.Signal // fired when the client's connection is ready again

	mu      sync.Mutex // guards closing
	closing bool
}

func newConn(client *clientv3.Client, cfg Config) *conn {
	c := &conn{
		client:     client,
		ns:         cfg.Namespace,
		timeout:    cfg.Timeout,
		maxBackoff: cfg.MaxBackoff,
		log:        cfg.Logger,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// spawn runs f on a goroutine of the registry, unless it is closing. Close
// waits for every such goroutine.
func (c *conn) spawn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// shut ends the registry's context: its goroutines stop, and spawn starts
// no more. Close then waits for them (c.wg).
func (c *conn) shut() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.cancel()
}

func (c *conn) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *conn) errClosed(op string) error {
	return fmt.Errorf("etcd: %s: %w", op, registry.ErrClosed)
}

// opCtx bounds ctx by the request timeout.
func (c *conn) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// wrapErr describes a failed request of operation op: ErrClosed once the
// registry is closing, the ctx's own error when the caller gave up, else as
// classify says.
func (c *conn) wrapErr(ctx context.Context, op string, err error) error {
	if c.closed() {
		return c.errClosed(op)
	}
	if ctx != nil && errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("etcd: %s: %w", op, ctx.Err())
	}
	return classify(op, err)
}

// answered notes that etcd just answered one of the registry's requests
// (see Config.PassivePing).
func (c *conn) answered() { c.lastAnswer.Store(time.Now().UnixNano()) }

// answeredWithin reports whether etcd answered the registry's own traffic
// less than d ago.
func (c *conn) answeredWithin(d time.Duration) bool {
	last := c.lastAnswer.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < d
}

// failing reports whether the client's connection is failing: it went
// through TRANSIENT_FAILURE (its last attempt to reach every endpoint
// failed) and has not been ready since; a reconnection attempt
// (CONNECTING) in between counts as failing too, as gRPC goes back to
// TRANSIENT_FAILURE when it fails. The next attempt comes when gRPC's
// reconnection backoff says. It is false when the state is not followed
// (Config.Client without a connection), while the connection is
// connecting for the first time, and while it is IDLE (gRPC reconnects an
// idle channel only for a request, so a Ping then sends its own).
func (c *conn) failing() (connectivity.State, bool) {
	if c.grpcConn == nil {
		return 0, false
	}
	st := c.grpcConn.GetState()
	switch st {
	case connectivity.TransientFailure:
		c.failedSinceReady.Store(true)
		return st, true
	case connectivity.Connecting:
		return st, c.failedSinceReady.Load()
	case connectivity.Ready:
		c.failedSinceReady.Store(false)
	}
	return st, false
}

// awaitConnection returns at once unless the client's connection is
// failing; then it waits, sending nothing, until the connection is ready
// again (or idle, or shut down) and returns nil, or until ctx ends and
// returns an error wrapping ctx's (classify makes a deadline
// registry.ErrUnavailable). A request sent while
// the connection fails would only wait for it in gRPC (clientv3's calls
// wait for a ready connection), counted as a call and holding a stream;
// waiting here instead still answers the moment the connection is back.
func (c *conn) awaitConnection(ctx context.Context) error {
	st, bad := c.failing()
	for bad {
		if !c.grpcConn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("the client's connection to etcd is failing (every endpoint refused or dropped the last attempt; gRPC tries again on its backoff): %w", ctx.Err())
		}
		st, bad = c.failing()
	}
	return nil
}

// observe feeds a linearizable response's header to the history; on a
// change it tells every keeper and the watch. It returns its verdict.
func (c *conn) observe(hdr *pb.ResponseHeader) verdict {
	if hdr != nil {
		c.answered()
	}
	v, seen := c.hist.observe(hdr)
	switch v {
	case changed:
		c.changedHistory(seen, hdr)
	case suspect:
		if !c.spawn(func() { c.confirm(seen) }) {
			c.hist.confirmed(nil, 0)
		}
	}
	return v
}

// confirm runs the confirmation read of a suspected history change.
func (c *conn) confirm(seen int64) {
	ctx, cancel := c.opCtx(c.ctx)
	defer cancel()
	resp, err := c.client.Get(ctx, c.ns, clientv3.WithCountOnly())
	if err != nil {
		c.hist.confirmed(nil, 0)
		return
	}
	if c.hist.confirmed(resp.Header, seen) {
		c.changedHistory(seen, resp.Header)
	}
}

func (c *conn) changedHistory(seen int64, hdr *pb.ResponseHeader) {
	c.log.Warn("etcd: etcd came back with another history (wiped, rebuilt or restored from a snapshot); checking every registration and listing every watch again",
		"seenRevision", seen, "revision", hdr.Revision, "cluster", hdr.ClusterId)
	c.historyChanged.Fire()
}

// probe is Ping's request: a linearizable read of one fixed key that never
// holds an instance (the namespace itself). etcd serves it with a ReadIndex
// round (the leader confirms its leadership with a quorum of heartbeats)
// and a point lookup in its key index, so its cost does not grow with the
// number of keys; it succeeds only while there is a leader and a quorum.
func (c *conn) probe(ctx context.Context) error {
	resp, err := c.client.Get(ctx, c.ns, clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	c.observe(resp.Header)
	return nil
}
