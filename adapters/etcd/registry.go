package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/regchain/regchain/registry"
)

// Source is the Update.Source of every state this package delivers.
const Source = "etcd"

// Registry is a registry.Registry backed by etcd v3. It also implements
// registry.Pinger and registry.RegistrationReporter.
//
// A Registry is safe for concurrent use by multiple goroutines.
type Registry struct {
	client     *clientv3.Client
	ownClient  bool // Close closes client
	ns         string
	ttl        int64 // lease TTL in seconds
	timeout    time.Duration
	maxBackoff time.Duration
	hubLinger  time.Duration // 0: hubLinger; negative: none
	log        *slog.Logger
	codec      Codec

	ctx    context.Context // the registry's own; keepalives and watchers run on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the registry started
	locks  keyLocks       // serializes Register/Deregister per key
	hub    hub            // the shared prefix watch behind every watcher

	passive    time.Duration // Config.PassivePing
	lastAnswer atomic.Int64  // unix nanos of the last response header observed
	connReady  atomic.Bool   // the client's connection is ready (monitorConn)

	hist           history // the identity of the history etcd serves
	historyChanged signal  // fired when etcd came back with another history
	reconnected    signal  // fired when the client's connection is ready again

	mu     sync.Mutex // guards the fields below
	closed bool
	regs   map[string]*registration // by etcd key

	badMu sync.Mutex       // guards bad
	bad   map[string]int64 // malformed key -> mod revision already logged

	hints layoutHints // warnings about the other record layout
}

var (
	_ registry.Registry             = (*Registry)(nil)
	_ registry.Pinger               = (*Registry)(nil)
	_ registry.RegistrationReporter = (*Registry)(nil)
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
	r := &Registry{
		client:     cfg.Client,
		ns:         cfg.Namespace,
		ttl:        ttlSeconds(cfg.TTL),
		timeout:    cfg.Timeout,
		maxBackoff: cfg.MaxBackoff,
		hubLinger:  cfg.hubLinger,
		passive:    cfg.PassivePing,
		log:        cfg.Logger,
		codec:      cfg.Codec,
		regs:       make(map[string]*registration),
		bad:        make(map[string]int64),
	}
	if r.client == nil {
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
		r.client = cli
		r.ownClient = true
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.hub.init(r)
	if conn := r.client.ActiveConnection(); conn != nil && !cfg.noConnMonitor {
		r.wg.Add(1)
		go r.monitorConn(conn)
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
	defer r.wg.Done()
	state := conn.GetState()
	ready := state == connectivity.Ready
	r.connReady.Store(ready)
	for conn.WaitForStateChange(r.ctx, state) {
		state = conn.GetState()
		r.connReady.Store(state == connectivity.Ready)
		switch state {
		case connectivity.Ready:
			if !ready {
				ready = true
				// A watch hub awaiting its confirmation reads etcd's
				// revision now (hub.caughtUp), which checks the history
				// too: one read per reconnection, not two.
				probe := !r.hub.awaitsConfirmation()
				r.reconnected.fire()
				if !probe {
					continue
				}
				r.wg.Add(1)
				go func() {
					defer r.wg.Done()
					ctx, cancel := r.opCtx(r.ctx)
					defer cancel()
					r.probe(ctx) //nolint:errcheck // a failed probe tells nothing new; the next request observes
				}()
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

// key returns the etcd key of an instance: <namespace>/<name>/<id>.
func (r *Registry) key(name, id string) string { return r.ns + "/" + name + "/" + id }

// servicePrefix returns the prefix of a service's keys, ending in "/" so
// that "foo" never matches "foobar".
func (r *Registry) servicePrefix(name string) string { return r.ns + "/" + name + "/" }

func (r *Registry) errClosed(op string) error {
	return fmt.Errorf("etcd: %s: %w", op, registry.ErrClosed)
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// opCtx bounds ctx by the request timeout.
func (r *Registry) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// wrapErr describes a failed request. Errors meaning etcd could not be
// reached or did not answer in time wrap ErrUnavailable; a ctx cancelled by
// the caller is returned as such; etcd's refusals for the credentials or
// the request itself (permission denied, authentication failed, a request
// too large) wrap ErrInvalid, as no retry would change them; other answers
// (a lost lease, a compacted revision) are returned as they are.
func (r *Registry) wrapErr(ctx context.Context, op string, err error) error {
	if r.isClosed() {
		return fmt.Errorf("etcd: %s: %w", op, registry.ErrClosed)
	}
	if ctx != nil && errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("etcd: %s: %w", op, ctx.Err())
	}
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

// Register implements registry.Registry. The first write (lease grant and
// put) runs under ctx; when it fails Register returns the error (wrapping
// ErrUnavailable when etcd could not be reached) and keeps nothing: the
// caller retries. Once written, the registration is kept alive on the
// registry's own context until Deregister or Close, re-granted and re-put
// whenever the lease is lost or the key is deleted or overwritten by
// someone else, with capped backoff and no retry limit.
//
// Registering an instance already registered here updates it in place (same
// lease). If that write fails, the error is returned and the registration
// stays, with the new data, which the keepalive loop writes as soon as etcd
// answers.
func (r *Registry) Register(ctx context.Context, in *registry.Instance) error {
	return r.register(ctx, in, r.ttl)
}

// RegisterTTL implements registry.TTLRegistrar: Register with a lease of
// ttl (rounded up to whole seconds; etcd raises it to its minimum) instead
// of Config.TTL. ttl <= 0 means Config.TTL. An instance already registered
// here keeps its lease and so its TTL.
func (r *Registry) RegisterTTL(ctx context.Context, in *registry.Instance, ttl time.Duration) error {
	if ttl <= 0 {
		return r.register(ctx, in, r.ttl)
	}
	return r.register(ctx, in, ttlSeconds(ttl))
}

func (r *Registry) register(ctx context.Context, in *registry.Instance, ttl int64) error {
	val, err := r.marshal(in)
	if err != nil {
		return fmt.Errorf("etcd: register: %w", err)
	}
	if r.isClosed() {
		return r.errClosed("register " + in.String())
	}
	op := "register " + in.String()
	key := r.key(in.Name, in.ID)
	unlock, err := r.locks.lock(ctx, r.ctx, key)
	if err != nil {
		return r.wrapErr(ctx, op, err)
	}
	defer unlock()
	r.mu.Lock()
	closed, g := r.closed, r.regs[key]
	r.mu.Unlock()
	if closed {
		return r.errClosed(op)
	}
	inst := in.Clone()
	if g != nil {
		return g.update(ctx, op, inst, string(val))
	}

	octx, cancel := r.opCtx(ctx)
	defer cancel()
	lease, rev, err := r.grantPut(octx, key, string(val), ttl)
	if err != nil {
		return r.wrapErr(ctx, op, err)
	}
	g = newRegistration(r, key, inst, string(val), lease, ttl)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		// The caller is told it failed: take the record back.
		rctx, rcancel := context.WithTimeout(context.Background(), r.timeout)
		defer rcancel()
		r.client.Revoke(rctx, lease) //nolint:errcheck // best effort; the lease expires anyway
		return r.errClosed(op)
	}
	r.regs[key] = g
	r.wg.Add(1)
	r.mu.Unlock()
	go g.run(lease, rev)
	return nil
}

// grantPut grants a lease of ttl seconds and puts key=val under it. It
// returns the lease and the put's revision.
//
// Both requests need a leader (see withLeader): a member cut off from the
// majority refuses them at once and they go to another member.
func (r *Registry) grantPut(ctx context.Context, key, val string, ttl int64) (clientv3.LeaseID, int64, error) {
	var grant *clientv3.LeaseGrantResponse
	err := withLeader(ctx, func(ctx context.Context) (err error) {
		grant, err = r.client.Grant(ctx, ttl)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("grant lease: %w", err)
	}
	r.observe(grant.ResponseHeader)
	var resp *clientv3.PutResponse
	err = withLeader(ctx, func(ctx context.Context) (err error) {
		resp, err = r.client.Put(ctx, key, val, clientv3.WithLease(grant.ID))
		return err
	})
	if err != nil {
		// The unused lease runs out by itself.
		return 0, 0, fmt.Errorf("put: %w", err)
	}
	r.observe(resp.Header)
	return grant.ID, resp.Header.Revision, nil
}

// Deregister implements registry.Registry: it stops the keepalive, deletes
// the key and revokes the lease. If etcd cannot be reached it returns an
// error wrapping ErrUnavailable; the keepalive is stopped all the same, so
// the record disappears when its lease runs out.
func (r *Registry) Deregister(ctx context.Context, in *registry.Instance) error {
	if err := registry.ValidateKey(in); err != nil {
		return fmt.Errorf("etcd: deregister: %w", err)
	}
	op := "deregister " + in.Key()
	if r.isClosed() {
		return r.errClosed(op)
	}
	key := r.key(in.Name, in.ID)
	unlock, err := r.locks.lock(ctx, r.ctx, key)
	if err != nil {
		return r.wrapErr(ctx, op, err)
	}
	defer unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.errClosed(op)
	}
	g := r.regs[key]
	delete(r.regs, key)
	r.mu.Unlock()
	var lease clientv3.LeaseID
	if g != nil {
		lease = g.stop()
	}
	octx, cancel := r.opCtx(ctx)
	defer cancel()
	err = withLeader(octx, func(ctx context.Context) error {
		_, err := r.client.Delete(ctx, key)
		return err
	})
	if err != nil {
		return r.wrapErr(ctx, op, err)
	}
	if lease != 0 {
		err := withLeader(octx, func(ctx context.Context) error {
			_, err := r.client.Revoke(ctx, lease)
			return err
		})
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return r.wrapErr(ctx, op+": revoke lease", err)
		}
	}
	return nil
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
		return nil, r.errClosed(op)
	}
	octx, cancel := r.opCtx(ctx)
	defer cancel()
	resp, err := r.client.Get(octx, r.servicePrefix(name), clientv3.WithPrefix())
	if err != nil {
		return nil, r.wrapErr(ctx, op, err)
	}
	r.observe(resp.Header)
	out := make([]*registry.Instance, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if _, in, ok := r.decode(kv); ok && in.Name == name {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		r.absent()
		return nil, fmt.Errorf("etcd: get %s: %w", registry.Quote(name), registry.ErrNotFound)
	}
	registry.SortInstances(out)
	return out, nil
}

// ListServices implements registry.Registry with a linearizable read of the
// whole namespace; a service counts when it has at least one valid record.
func (r *Registry) ListServices(ctx context.Context) ([]string, error) {
	if r.isClosed() {
		return nil, r.errClosed("list services")
	}
	octx, cancel := r.opCtx(ctx)
	defer cancel()
	resp, err := r.client.Get(octx, r.ns+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, r.wrapErr(ctx, "list services", err)
	}
	r.observe(resp.Header)
	seen := make(map[string]bool)
	var names []string
	for _, kv := range resp.Kvs {
		if _, in, ok := r.decode(kv); ok && !seen[in.Name] {
			seen[in.Name] = true
			names = append(names, in.Name)
		}
	}
	if len(names) == 0 {
		r.absent()
	}
	slices.Sort(names)
	return names, nil
}

// Ping implements registry.Pinger with a linearizable read of one fixed
// key (see probe): it needs a leader and a quorum, and its cost does not
// grow with the data. Its answer also tells whether etcd came back with
// another history. It is bounded by ctx and by Config.Timeout.
func (r *Registry) Ping(ctx context.Context) error {
	if r.isClosed() {
		return r.errClosed("ping")
	}
	if r.passive > 0 && r.connReady.Load() {
		if last := r.lastAnswer.Load(); last != 0 && time.Since(time.Unix(0, last)) < r.passive {
			return nil // etcd answered our own traffic just now: no request needed
		}
	}
	octx, cancel := r.opCtx(ctx)
	defer cancel()
	if err := r.probe(octx); err != nil {
		return r.wrapErr(ctx, "ping", err)
	}
	return nil
}

// Registrations implements registry.RegistrationReporter.
func (r *Registry) Registrations() []registry.RegistrationState {
	r.mu.Lock()
	regs := make([]*registration, 0, len(r.regs))
	for _, g := range r.regs {
		regs = append(regs, g)
	}
	r.mu.Unlock()
	out := make([]registry.RegistrationState, 0, len(regs))
	for _, g := range regs {
		out = append(out, g.state())
	}
	slices.SortFunc(out, func(a, b registry.RegistrationState) int {
		if c := strings.Compare(a.Instance.Name, b.Instance.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Instance.ID, b.Instance.ID)
	})
	return out
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
	r.cancel()
	r.hub.endAll(r.errClosed("watch"))
	r.wg.Wait()
	if r.ownClient {
		if err := r.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("etcd: close client: %w", err)
		}
	}
	return nil
}

// splitKey returns the service name and instance ID encoded in key, or
// ok=false when key is not <namespace>/<name>/<id>.
func (r *Registry) splitKey(key string) (name, id string, ok bool) {
	rest, found := strings.CutPrefix(key, r.ns+"/")
	if !found {
		return "", "", false
	}
	name, id, found = strings.Cut(rest, "/")
	if !found || name == "" || id == "" {
		return "", "", false
	}
	return name, id, true
}

// decode turns a stored record into an Instance. It returns the service
// name from the key (when the key has one) and ok=false, after logging once
// per record version, when the record is malformed or disagrees with its
// key.
func (r *Registry) decode(kv *mvccpb.KeyValue) (string, *registry.Instance, bool) {
	key := string(kv.Key)
	name, id, ok := r.splitKey(key)
	if !ok {
		r.logBad(key, kv.ModRevision, errors.New("key is not <namespace>/<name>/<id>"))
		return "", nil, false
	}
	in, err := r.unmarshal(kv.Value)
	if err != nil {
		if !r.readsMicro() && isMicroRecord(kv.Value) {
			r.microHere(key)
		} else {
			r.logBad(key, kv.ModRevision, err)
		}
		return name, nil, false
	}
	if in.Name != name || in.ID != id {
		r.logBad(key, kv.ModRevision, fmt.Errorf("record is %s, key says %s", in.Key(), registry.Quote(name+"/"+id)))
		return name, nil, false
	}
	return name, in, true
}

// logBad logs a skipped record once per (key, revision), so a bad record
// read by every GetService is not logged every time.
func (r *Registry) logBad(key string, rev int64, err error) {
	r.badMu.Lock()
	if r.bad[key] == rev {
		r.badMu.Unlock()
		return
	}
	if len(r.bad) >= 4096 {
		clear(r.bad)
	}
	r.bad[key] = rev
	r.badMu.Unlock()
	r.log.Warn("etcd: skipping malformed record", "key", registry.Clip(key), "revision", rev, "error", err)
}

// keyLocks serializes Register and Deregister per key without holding a
// lock across network calls of other keys.
type keyLocks struct {
	mu sync.Mutex // guards m
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // capacity 1: full while held
	refs int           // holders and waiters
}

// lock acquires key's lock, giving up when ctx or stop is done.
func (l *keyLocks) lock(ctx, stop context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	kl := l.m[key]
	if kl == nil {
		kl = &keyLock{ch: make(chan struct{}, 1)}
		l.m[key] = kl
	}
	kl.refs++
	l.mu.Unlock()
	select {
	case kl.ch <- struct{}{}:
		return func() {
			<-kl.ch
			l.release(key, kl)
		}, nil
	case <-ctx.Done():
		l.release(key, kl)
		return nil, ctx.Err()
	case <-stop.Done():
		l.release(key, kl)
		return nil, registry.ErrClosed
	}
}

func (l *keyLocks) release(key string, kl *keyLock) {
	l.mu.Lock()
	kl.refs--
	if kl.refs == 0 {
		delete(l.m, key)
	}
	l.mu.Unlock()
}
