package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/regchain/regchain/registry"
)

// Source is the Update.Source of every update this package delivers.
const Source = "kubernetes"

// Registry is a registry.Registry over a Kubernetes API server. It is safe
// for concurrent use.
type Registry struct {
	cfg    Config
	client k8s.Interface
	tr     *http.Transport // ours to close on Close; nil for Config.Client
	log    *slog.Logger

	ctx    context.Context // the registry's own: informers, dispatcher, upkeep, probe
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reach *reach
	hub   registry.Hub // every watcher's feed
	lists atomic.Int64 // lists (or streamed lists) the informers made: tests count relists
	locks keyLocks     // serialises Register/Deregister per instance

	startOnce sync.Once
	sources   []*source     // set by start
	synced    chan struct{} // closed when every source has synced
	wake      chan struct{} // capacity 1: the dispatcher has work
	keepWake  chan struct{} // capacity 1: the upkeep has work

	mu       sync.Mutex // guards the fields below
	closed   bool
	listErrs map[string]error // last read failure per source, not an outage
	errMoved chan struct{}    // closed (and replaced) when listErrs gains an error
	dirty    map[string]bool  // services changed since the dispatcher last ran
	newFeeds []*subscription  // watchers waiting for their first state
	watched  map[string]int   // named watchers per service
	watchAll int              // watch-all watchers
	warned   map[string]string
	regs     map[string]*registration // by Instance.Key()
	keeper   *keeper                  // nil until the first Register
	ownerRef *ownerRef                // the Pod owning this process's slices, once looked up
}

var (
	_ registry.Registry             = (*Registry)(nil)
	_ registry.Pinger               = (*Registry)(nil)
	_ registry.RegistrationReporter = (*Registry)(nil)
	_ registry.Validator            = (*Registry)(nil)
)

// New returns a Registry configured by cfg. It does not contact the API
// server: informers start with the first read or watch, the upkeep with
// the first Register. Use Ping to check the API server answers.
func New(cfg Config) (*Registry, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:      cfg,
		client:   cfg.Client,
		log:      cfg.Logger.With("registry", Source),
		synced:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
		keepWake: make(chan struct{}, 1),
		listErrs: make(map[string]error),
		errMoved: make(chan struct{}),
		dirty:    make(map[string]bool),
		watched:  make(map[string]int),
		warned:   make(map[string]string),
		regs:     make(map[string]*registration),
	}
	if r.client == nil {
		rc, err := cfg.restConfig()
		if err != nil {
			return nil, err
		}
		if r.client, r.tr, err = newClient(rc); err != nil {
			return nil, err
		}
	}
	r.reach = newReach(r)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// errClosed is what every method returns after Close.
func errClosed(op string) error { return fmt.Errorf("kubernetes: %s: %w", op, registry.ErrClosed) }

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// goBackground runs fn on a goroutine of the registry, with the registry's
// ctx, unless it is closed; it reports whether it did.
func (r *Registry) goBackground(fn func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(r.ctx)
	}()
	return true
}

// start starts the informers and the dispatcher, once.
func (r *Registry) start() {
	r.startOnce.Do(func() {
		sources := r.newSources()
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		r.sources = sources
		r.mu.Unlock()
		ictx := r.informerContext(r.ctx)
		for _, s := range sources {
			r.goBackground(func(context.Context) { s.inf.RunWithContext(ictx) })
		}
		r.goBackground(func(ctx context.Context) {
			checks := make([]cache.InformerSynced, len(sources))
			for i, s := range sources {
				checks[i] = s.inf.HasSynced
			}
			if cache.WaitForCacheSync(ctx.Done(), checks...) {
				close(r.synced)
				r.signal()
			}
		})
		r.goBackground(r.dispatch)
	})
}

// ready starts the informers if needed and waits until they have synced,
// for at most Config.Timeout and ctx. It returns at once with an error
// wrapping registry.ErrUnavailable while the API server is known to be
// unreachable.
func (r *Registry) ready(ctx context.Context) error {
	r.start()
	select {
	case <-r.synced:
		if down, _, err := r.reach.state(); down {
			return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
		}
		return nil
	default:
	}
	timer := time.NewTimer(r.cfg.Timeout)
	defer timer.Stop()
	for {
		down, changed, err := r.reach.state()
		if down {
			return fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
		}
		r.mu.Lock()
		var last error
		for _, s := range r.sources {
			if e := r.listErrs[s.String()]; e != nil {
				last = e
			}
		}
		moved := r.errMoved
		r.mu.Unlock()
		if last != nil {
			return last // refused (403): the reflector retries, but not for this read
		}
		select {
		case <-r.synced:
			return nil
		case <-changed:
			continue
		case <-moved:
			continue
		case <-ctx.Done():
		case <-timer.C:
		case <-r.ctx.Done():
			return errClosed("read")
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: informers not synced: %w", registry.ErrUnavailable, ctx.Err())
		}
		return fmt.Errorf("%w: informers not synced within %v", registry.ErrUnavailable, r.cfg.Timeout)
	}
}

// GetService implements registry.Registry. It reads the informers' caches:
// no request once they have synced.
func (r *Registry) GetService(ctx context.Context, name string) ([]*registry.Instance, error) {
	if r.isClosed() {
		return nil, errClosed("get")
	}
	if err := registry.ValidateName(name); err != nil {
		return nil, fmt.Errorf("kubernetes: get: %w", err)
	}
	if err := r.ready(ctx); err != nil {
		return nil, fmt.Errorf("kubernetes: get %q: %w", name, err)
	}
	out := r.instances(name)
	if len(out) == 0 {
		return nil, fmt.Errorf("kubernetes: get %q: %w", name, registry.ErrNotFound)
	}
	return out, nil
}

// ListServices implements registry.Registry: the services with at least one
// instance, from the informers' caches.
func (r *Registry) ListServices(ctx context.Context) ([]string, error) {
	if r.isClosed() {
		return nil, errClosed("list")
	}
	if err := r.ready(ctx); err != nil {
		return nil, fmt.Errorf("kubernetes: list: %w", err)
	}
	seen := map[string]bool{}
	for _, s := range r.sources {
		for _, name := range s.inf.GetIndexer().ListIndexFuncValues(indexService) {
			seen[name] = true
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		if len(r.instances(name)) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// instances returns the current instances of name, sorted by ID, from the
// informers' caches. An instance ID seen twice (one endpoint in two slices
// for a moment, the same ID in two namespaces) is taken once, from the
// first object in namespace/name order.
func (r *Registry) instances(name string) []*registry.Instance {
	var out []*registry.Instance
	seen := map[string]bool{}
	add := func(in *registry.Instance) {
		if !seen[in.ID] {
			seen[in.ID] = true
			out = append(out, in)
		}
	}
	for _, s := range r.sources {
		objs, err := s.inf.GetIndexer().ByIndex(indexService, name)
		if err != nil {
			continue
		}
		slices.SortFunc(objs, func(a, b any) int { return strings.Compare(objectKey(a), objectKey(b)) })
		for _, obj := range objs {
			switch o := obj.(type) {
			case *discoveryv1.EndpointSlice:
				ins, err := decodeSlice(o)
				if err != nil {
					r.skip("EndpointSlice", &o.ObjectMeta, err)
					continue
				}
				for _, in := range ins {
					add(in)
				}
			case *corev1.Pod:
				in, err := decodePod(o)
				if err != nil {
					r.skip("Pod", &o.ObjectMeta, err)
					continue
				}
				if in != nil {
					add(in)
				}
			}
		}
	}
	registry.SortInstances(out)
	return out
}

func objectKey(obj any) string {
	if m, err := metaOf(obj); err == nil {
		return m.GetNamespace() + "/" + m.GetName()
	}
	return ""
}

func metaOf(obj any) (metav1.Object, error) {
	if m, ok := obj.(metav1.Object); ok {
		return m, nil
	}
	return nil, fmt.Errorf("%T is no object", obj)
}

// skip logs an object that does not decode: at WARN once per version of
// the object, at DEBUG after that.
func (r *Registry) skip(kind string, m *metav1.ObjectMeta, err error) {
	key := kind + " " + m.Namespace + "/" + m.Name
	r.mu.Lock()
	first := r.warned[key] != m.ResourceVersion
	if first {
		if len(r.warned) > 10000 {
			clear(r.warned) // bounded: a flood of bad objects warns again, no more
		}
		r.warned[key] = m.ResourceVersion
	}
	r.mu.Unlock()
	if first {
		r.log.Warn("skipping an object that holds no valid instance", "object", key, "err", err)
	} else {
		r.log.Debug("skipping an object that holds no valid instance", "object", key, "err", err)
	}
}

// Ping implements registry.Pinger: GET /readyz, which the API server
// answers 200 only when it can serve (its etcd included), to any client.
func (r *Registry) Ping(ctx context.Context) error {
	if r.isClosed() {
		return errClosed("ping")
	}
	if err := r.ping(ctx); err != nil {
		if errors.Is(err, registry.ErrUnavailable) {
			r.reach.failed(err) // reads answer ErrUnavailable until a probe succeeds
		}
		return err
	}
	r.reach.answered()
	return nil
}

func (r *Registry) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	rc := r.client.Discovery().RESTClient()
	var err error
	if rc == nil { // a fake clientset
		_, err = r.client.Discovery().ServerVersion()
	} else {
		err = rc.Get().AbsPath("/readyz").Do(ctx).Error()
	}
	if err != nil {
		return fmt.Errorf("kubernetes: ping: %w", classify(err))
	}
	return nil
}

// Close implements registry.Registry: it stops the informers and the
// upkeep, ends every watcher with registry.ErrClosed and waits for every
// goroutine to return. It deletes nothing: EndpointSlices written by
// Register stay (see the package doc, "Registrations").
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.hub.EndAll(errClosed("watch"))
	r.cancel()
	r.wg.Wait()
	// The dispatcher has returned: the watchers it had not given a first
	// state yet (not in the hub), and any it added after the EndAll above,
	// end too.
	r.mu.Lock()
	fresh := r.newFeeds
	r.newFeeds = nil
	r.mu.Unlock()
	for _, s := range fresh {
		if s.feed != nil {
			s.feed.End(errClosed("watch"))
		}
	}
	r.hub.EndAll(errClosed("watch"))
	if r.tr != nil {
		r.tr.CloseIdleConnections()
	}
	return nil
}
