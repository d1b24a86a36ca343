package zk

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

	gozk "github.com/go-zookeeper/zk"

	"github.com/regchain/regchain/internal/redact"
	"github.com/regchain/regchain/internal/signal"
	"github.com/regchain/regchain/registry"
)

// Source is the Update.Source of this backend.
const Source = "zookeeper"

// closeWait bounds how long Close waits for go-zookeeper's connection
// goroutine to exit after closing an owned connection.
const closeWait = 10 * time.Second

// Registry is a registry.Registry over ZooKeeper: each instance is an
// ephemeral node <root>/<name>/<id> holding its JSON, kept alive by the
// ZooKeeper session and put back whenever the session is replaced or the node
// is deleted or overwritten. It also implements registry.Pinger and
// registry.RegistrationReporter.
//
// A Registry is safe for concurrent use by multiple goroutines.
type Registry struct {
	cur  atomic.Pointer[connState] // the connection; replaced only by the monitor
	hub  *watchHub
	root layout // Config.Namespace
	acl  []gozk.ACL
	cfg  Config
	log  *slog.Logger

	ctx    context.Context // done on Close: every goroutine's lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup // keepers, watchers and the session monitor
	calls  sync.WaitGroup // go-zookeeper calls in flight (see do)
	wake   chan struct{}  // capacity 1: a session event for the monitor
	feeds  registry.Hub   // every watcher
	// session fires when the connection's session state changes.
	session signal.Signal

	mu     sync.Mutex // guards the fields below
	closed bool
	regs   map[string]*registration // by Instance.Key
}

// String returns "zk.Registry(SERVERS ROOT)", for messages.
func (r *Registry) String() string {
	return "zk.Registry(" + strings.Join(r.cfg.Servers, ",") + " " + r.cfg.Namespace + ")"
}

// Format implements fmt.Formatter: every verb prints String, never the
// fields (the configuration and the ACLs hold the digest credentials).
func (r *Registry) Format(f fmt.State, verb rune) {
	redact.FormatShort(f, verb, r.String(), r.String())
}

// LogValue implements slog.LogValuer: String.
func (r *Registry) LogValue() slog.Value { return slog.StringValue(r.String()) }

// New returns a Registry configured by cfg. It does not wait for ZooKeeper: an
// unreachable server is not an error here (calls return ErrUnavailable until
// it answers), nor is an address that does not resolve yet (it is dialled
// again). It fails only on an invalid Config.
func New(cfg Config) (*Registry, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		root: layout(c.Namespace),
		cfg:  c,
		log:  c.Logger,
		wake: make(chan struct{}, 1),
		regs: make(map[string]*registration),
	}
	if c.Username != "" {
		r.acl = append(gozk.DigestACL(gozk.PermAll, c.Username, c.Password), gozk.WorldACL(gozk.PermRead)...)
	} else {
		r.acl = gozk.WorldACL(gozk.PermAll)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.hub = newWatchHub(r)
	if c.Client != nil {
		r.cur.Store(&connState{conn: c.Client})
	} else {
		cs, err := r.dial()
		if err != nil {
			r.cancel()
			return nil, fmt.Errorf("zookeeper: connect %v: %w: %w", c.Servers, registry.ErrUnavailable, err)
		}
		r.cur.Store(cs)
	}
	r.wg.Add(2)
	go r.monitor()
	go r.hub.run()
	return r, nil
}

var (
	_ registry.Registry             = (*Registry)(nil)
	_ registry.Pinger               = (*Registry)(nil)
	_ registry.RegistrationReporter = (*Registry)(nil)
)

// Close stops every keeper and watcher (their Next returns ErrClosed) and
// waits for them. If New dialled the connection, Close closes it: the session
// ends and ZooKeeper deletes the Registry's ephemeral nodes at once. A
// connection passed in Config.Client is left open, and its nodes stay until
// its session ends. Close is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.feeds.EndAll(registry.ErrClosed)
	r.wg.Wait() // the monitor is gone: the connection is not replaced any more
	if cs := r.cur.Load(); cs.owned {
		cs.shut(r)
		r.calls.Wait() // a closed connection fails every pending request at once
	}
	return nil
}

// GetService returns the service's instances sorted by ID, or an error
// wrapping registry.ErrNotFound when it has none. Nodes whose data is not a
// valid Instance of this service are skipped and logged. It reads through
// the watch hub (see Reads in the package doc): a service read in the last
// minute, or watched, is answered from the hub's current state.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("zookeeper: get: %w", err)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return r.read(ctx, name)
}

// read answers GetService from the hub: at once if it holds the state of
// name, else once it has read it, within ctx.
func (r *Registry) read(ctx context.Context, name string) ([]*registry.Instance, error) {
	for {
		if r.ctx.Err() != nil {
			return nil, r.fail(fmt.Sprintf("get %s", registry.Quote(name)), registry.ErrClosed)
		}
		session := r.session.Wait()
		ins, ok, changed, err := r.hub.lookup(name)
		if r.zconn().State() != gozk.StateHasSession {
			ok = false // nothing is current without a session
		}
		switch {
		case ok && err != nil:
			return nil, r.fail(fmt.Sprintf("get %s", registry.Quote(name)), err)
		case ok && len(ins) == 0:
			return nil, fmt.Errorf("zookeeper: get %s: %w", registry.Quote(name), registry.ErrNotFound)
		case ok:
			return ins, nil
		}
		select {
		case <-changed:
		case <-session:
		case <-ctx.Done():
			state := r.zconn().State()
			return nil, r.fail(fmt.Sprintf("get %s", registry.Quote(name)), fmt.Errorf("read not complete (%v; it goes on for the next call): %w", state, context.Cause(ctx)))
		case <-r.ctx.Done():
			return nil, r.fail(fmt.Sprintf("get %s", registry.Quote(name)), registry.ErrClosed)
		}
	}
}

// ListServices returns the sorted names of the services that have at least
// one instance node.
func (r *Registry) ListServices(ctx context.Context) ([]string, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var out []string
	err := r.do(ctx, func() error {
		conn := r.zconn()
		names, _, err := conn.Children(string(r.root))
		if errors.Is(err, gozk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		keep := make([]bool, len(names))
		errs := make([]error, len(names))
		parallel(len(names), func(i int) {
			ok, st, err := conn.Exists(r.root.servicePath(names[i]))
			errs[i] = err
			keep[i] = err == nil && ok && st.NumChildren > 0
		})
		if err := errors.Join(errs...); err != nil {
			return err
		}
		list := make([]string, 0, len(names))
		for i, n := range names {
			if keep[i] && registry.ValidateName(n) == nil {
				list = append(list, n)
			}
		}
		out = list
		return nil
	})
	if err != nil {
		return nil, r.fail("list services", err)
	}
	slices.Sort(out)
	return out, nil
}

// Ping implements registry.Pinger: one round trip (Exists on the root),
// bounded by ctx and Config.Timeout.
func (r *Registry) Ping(ctx context.Context) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	err := r.do(ctx, func() error {
		_, _, err := r.zconn().Exists(string(r.root))
		return err
	})
	if err != nil {
		return r.fail("ping", err)
	}
	return nil
}

// fail wraps err from operation op with the sentinel it stands for.
func (r *Registry) fail(op string, err error) error { return classify(r.ctx.Err() != nil, op, err) }

// decode decodes an instance node's data, logging and returning nil for a
// malformed record.
func (r *Registry) decode(service, id string, data []byte) *registry.Instance {
	in, err := decodeNode(service, id, data)
	if err != nil {
		r.log.Warn("zookeeper: skipping malformed instance node", "path", registry.Clip(r.root.instancePath(service, id)), "err", err)
		return nil
	}
	return in
}

// bound limits ctx by Config.Timeout.
func (r *Registry) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.Timeout)
}

// do runs f, which makes go-zookeeper calls, in a goroutine of its own and
// waits for it, for ctx or for Close, whichever comes first: go-zookeeper
// calls take no ctx and wait for as long as the connection is down. f starts
// only once the connection has a session: a call issued without one would
// queue on the connection (go-zookeeper keeps such requests while a
// handshake hangs, and sends them all when it completes), leaving a
// goroutine and a stale request behind each attempt that gave up. A call
// left behind anyway (the connection dropped under it) ends when
// go-zookeeper answers or the connection closes. f's results may be read
// only when do returns f's own result (not ctx's error or ErrClosed). The
// credentials, if any, are added to the connection first.
func (r *Registry) do(ctx context.Context, f func() error) error {
	if err := r.awaitSession(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return registry.ErrClosed
	}
	r.calls.Add(1)
	r.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer r.calls.Done()
		if err := r.auth(r.cur.Load()); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-r.ctx.Done():
		return registry.ErrClosed
	}
}

// sessionPoll is how often awaitSession reads the connection's state, in
// case the session event that would wake it was missed.
const sessionPoll = 50 * time.Millisecond

// awaitSession waits until the connection has a session, for ctx or Close.
func (r *Registry) awaitSession(ctx context.Context) error {
	var poll <-chan time.Time
	for {
		changed := r.session.Wait()
		state := r.zconn().State()
		if state == gozk.StateHasSession {
			return nil
		}
		if poll == nil {
			t := time.NewTicker(sessionPoll)
			defer t.Stop()
			poll = t.C
		}
		select {
		case <-changed:
		case <-poll:
		case <-ctx.Done():
			return fmt.Errorf("no session (%v): %w", state, context.Cause(ctx))
		case <-r.ctx.Done():
			return registry.ErrClosed
		}
	}
}

// parallelism bounds the requests a read keeps in flight on the connection
// (go-zookeeper pipelines concurrent requests on one connection).
const parallelism = 64

// parallel calls f(i) for every i in [0, n) from up to parallelism
// goroutines and returns when all are done.
func parallel(n int, f func(i int)) {
	workers := min(n, parallelism)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
