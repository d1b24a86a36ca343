package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"

	"github.com/regchain/regchain/internal/keylock"
	"github.com/regchain/regchain/registry"
)

// Source is the Update.Source of every state this package delivers.
const Source = "etcd"

// Registry is a registry.Registry backed by etcd v3. It also implements
// registry.Pinger, registry.RegistrationReporter and registry.TTLRegistrar.
//
// A Registry is safe for concurrent use by multiple goroutines.
type Registry struct {
	c         *conn         // the client, the history, the registry's goroutines
	rec       *records      // the key layout and the record codec
	hub       *hub          // the shared watch behind every watcher
	ownClient bool          // Close closes the client
	ttl       int64         // lease TTL in seconds
	passive   time.Duration // Config.PassivePing
	codec     Codec         // the record layout (marshal, unmarshal)
	locks     keylock.Locks // serializes Register/Deregister per key

	mu     sync.Mutex // guards the fields below
	closed bool
	regs   map[string]*registration // by etcd key
}

var (
	_ registry.Registry             = (*Registry)(nil)
	_ registry.Pinger               = (*Registry)(nil)
	_ registry.RegistrationReporter = (*Registry)(nil)
	_ registry.TTLRegistrar         = (*Registry)(nil)
)

// New returns a Registry. It does not wait for etcd: it succeeds while etcd
// is down (except with Username set, see Config.DialTimeout), and the
// registry's calls report ErrUnavailable until etcd answers.
//
// A client New creates has gRPC keepalive pings (10 s, 5 s timeout) to
// notice dead connections, tries to reconnect at most MaxReconnectDelay
// apart (or MaxBackoff, if lower) so that registrations are restored
// within about a second of etcd answering again whatever the outage's
// length, and logs nothing (the registry logs to Config.Logger).
func New(cfg Config) (*Registry, error) {
	cfg = cfg.withDefaults()
	if err := cfg.checkEndpoints(); err != nil {
		return nil, err
	}
	client, own := cfg.Client, false
	if client == nil {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:            cfg.Endpoints,
			DialTimeout:          cfg.DialTimeout,
			DialKeepAliveTime:    10 * time.Second,
			DialKeepAliveTimeout: 5 * time.Second,
			TLS:                  cfg.TLS,
			Username:             cfg.Username,
			Password:             cfg.Password,
			Logger:               zap.NewNop(),
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: grpcbackoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   min(cfg.MaxBackoff, MaxReconnectDelay),
				},
				MinConnectTimeout: cfg.DialTimeout,
			})},
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: connect %v: %w: %w", cfg.Endpoints, registry.ErrUnavailable, err)
		}
		client, own = cli, true
	}
	c := newConn(client, cfg)
	r := &Registry{
		c:         c,
		ownClient: own,
		ttl:       ttlSeconds(cfg.TTL),
		passive:   cfg.PassivePing,
		codec:     cfg.Codec,
		regs:      make(map[string]*registration),
	}
	r.rec = newRecords(c, cfg.Codec, r.unmarshal)
	r.hub = newHub(c, cfg.hubLinger)
	if conn := client.ActiveConnection(); conn != nil && !cfg.noConnMonitor {
		c.grpcConn = conn
		c.spawn(func() { r.monitorConn(conn) })
	}
	return r, nil
}

// monitorConn follows the state of the client's gRPC connection. When a
// connection that was ready starts reconnecting (etcd stopped, the
// connection cut or, with keepalive pings, found dead), the watch hub is
// told: clientv3 retries its watch streams by itself and never closes their
// channels, so watchers would otherwise stay silent for the whole outage.
// When it is ready again, keepers waiting to restore a registration retry
// at once instead of when their backoff says, and a probe checks whether
// etcd came back with another history.
func (r *Registry) monitorConn(conn *grpc.ClientConn) {
	c := r.c
	state := conn.GetState()
	ready := state == connectivity.Ready
	c.ready.Store(ready)
	for conn.WaitForStateChange(c.ctx, state) {
		state = conn.GetState()
		c.ready.Store(state == connectivity.Ready)
		switch state {
		case connectivity.Ready:
			c.failedSinceReady.Store(false)
		case connectivity.TransientFailure:
			c.failedSinceReady.Store(true)
		}
		switch state {
		case connectivity.Ready:
			if !ready {
				ready = true
				// A watch awaiting its confirmation reads etcd's revision
				// now (lister.recover), which checks the history too: one
				// read per reconnection, not two.
				probe := !r.hub.awaitsConfirmation()
				c.reconnected.Fire()
				if !probe {
					continue
				}
				c.spawn(func() {
					ctx, cancel := c.opCtx(c.ctx)
					defer cancel()
					c.probe(ctx) //nolint:errcheck // a failed probe tells nothing new; the next request observes
				})
			}
		case connectivity.Idle, connectivity.Connecting, connectivity.TransientFailure:
			// A transport that closes goes through Idle; so does a channel
			// unused for a long while, which has no watcher to tell.
			if ready {
				ready = false
				r.hub.connLost(state)
			}
		}
	}
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// GetService implements registry.Registry with a linearizable read.
// Records that cannot be decoded, or whose name or ID disagree with their
// key, are skipped and logged.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("etcd: get service: %w", err)
	}
	op := fmt.Sprintf("get %s", registry.Quote(name))
	if r.isClosed() {
		return nil, r.c.errClosed(op)
	}
	octx, cancel := r.c.opCtx(ctx)
	defer cancel()
	resp, err := r.c.client.Get(octx, r.rec.servicePrefix(name), clientv3.WithPrefix())
	if err != nil {
		return nil, r.c.wrapErr(ctx, op, err)
	}
	r.c.observe(resp.Header)
	out := make([]*registry.Instance, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if _, in, ok := r.rec.decode(kv); ok && in.Name == name {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		r.rec.absent()
		return nil, fmt.Errorf("etcd: get %s: %w", registry.Quote(name), registry.ErrNotFound)
	}
	registry.SortInstances(out)
	return out, nil
}

// ListServices implements registry.Registry with a linearizable read of the
// whole namespace; a service counts when it has at least one valid record.
func (r *Registry) ListServices(ctx context.Context) ([]string, error) {
	if r.isClosed() {
		return nil, r.c.errClosed("list services")
	}
	octx, cancel := r.c.opCtx(ctx)
	defer cancel()
	resp, err := r.c.client.Get(octx, r.c.ns+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, r.c.wrapErr(ctx, "list services", err)
	}
	r.c.observe(resp.Header)
	seen := make(map[string]bool)
	var names []string
	for _, kv := range resp.Kvs {
		if _, in, ok := r.rec.decode(kv); ok && !seen[in.Name] {
			seen[in.Name] = true
			names = append(names, in.Name)
		}
	}
	if len(names) == 0 {
		r.rec.absent()
	}
	slices.Sort(names)
	return names, nil
}

// Ping implements registry.Pinger with a linearizable read of one fixed
// key (see conn.probe): it needs a leader and a quorum, and its cost does not
// grow with the data. Its answer also tells whether etcd came back with
// another history. It is bounded by ctx and by Config.Timeout.
func (r *Registry) Ping(ctx context.Context) error {
	if r.isClosed() {
		return r.c.errClosed("ping")
	}
	if r.passive > 0 && r.c.ready.Load() && r.c.answeredWithin(r.passive) {
		return nil // etcd answered our own traffic just now: no request needed
	}
	octx, cancel := r.c.opCtx(ctx)
	defer cancel()
	if err := r.c.awaitConnection(octx); err != nil {
		return r.c.wrapErr(ctx, "ping", err)
	}
	if err := r.c.probe(octx); err != nil {
		return r.c.wrapErr(ctx, "ping", err)
	}
	return nil
}

// Close implements registry.Registry. It stops every keepalive and watcher
// and waits for their goroutines; it does not delete or revoke anything,
// so this process's records disappear when their leases run out (TTL).
// Watchers' Next returns ErrClosed. A client New created is closed; one
// passed in Config.Client is not.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.regs = nil
	r.mu.Unlock()
	r.c.shut()
	r.hub.endAll(r.c.errClosed("watch"))
	r.c.wg.Wait()
	if r.ownClient {
		if err := r.c.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("etcd: close client: %w", err)
		}
	}
	return nil
}
