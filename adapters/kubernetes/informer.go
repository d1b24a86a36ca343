package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/regchain/regchain/registry"
)

// indexService indexes the objects of a source by regchain service name.
const indexService = "service"

// source is one informer of the registry's reads: the EndpointSlices (or,
// with KratosRead, the Kratos-labelled Pods) of one namespace, or of all.
type source struct {
	kind string // "endpointslices" or "pods"
	ns   string // metav1.NamespaceAll for every namespace
	inf  cache.SharedIndexInformer
}

func (s *source) String() string {
	if s.ns == metav1.NamespaceAll {
		return s.kind + " in every namespace"
	}
	return s.kind + " in namespace " + s.ns
}

// newSources returns the informers of the registry's reads, not started.
func (r *Registry) newSources() []*source {
	var out []*source
	for _, ns := range r.cfg.Namespaces {
		out = append(out, r.newSliceSource(ns))
		if r.cfg.Kratos != KratosOff {
			out = append(out, r.newPodSource(ns))
		}
	}
	return out
}

func (r *Registry) newSliceSource(ns string) *source {
	s := &source{kind: "endpointslices", ns: ns}
	api := r.client.DiscoveryV1().EndpointSlices(ns)
	lw := &listWatch{r: r, what: s.String(), selector: r.cfg.LabelSelector,
		list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
		watch: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return api.Watch(ctx, o)
		},
	}
	s.inf = cache.NewSharedIndexInformerWithOptions(lw, &discoveryv1.EndpointSlice{}, cache.SharedIndexInformerOptions{
		Indexers: cache.Indexers{indexService: func(obj any) ([]string, error) {
			if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
				if name := serviceOf(es); name != "" {
					return []string{name}, nil
				}
			}
			return nil, nil
		}},
		ObjectDescription: "regchain " + s.String(),
	})
	_ = s.inf.SetTransform(trimSlice)
	r.watchHandlers(s)
	return s
}

func (r *Registry) newPodSource(ns string) *source {
	s := &source{kind: "pods", ns: ns}
	api := r.client.CoreV1().Pods(ns)
	sel := KratosLabelName
	if r.cfg.LabelSelector != "" {
		sel = r.cfg.LabelSelector + "," + sel
	}
	lw := &listWatch{r: r, what: s.String(), selector: sel,
		list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
		watch: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return api.Watch(ctx, o)
		},
	}
	s.inf = cache.NewSharedIndexInformerWithOptions(lw, &corev1.Pod{}, cache.SharedIndexInformerOptions{
		Indexers: cache.Indexers{indexService: func(obj any) ([]string, error) {
			if pod, ok := obj.(*corev1.Pod); ok {
				if name := kratosName(pod); name != "" {
					return []string{name}, nil
				}
			}
			return nil, nil
		}},
		ObjectDescription: "regchain " + s.String(),
	})
	_ = s.inf.SetTransform(trimPod)
	r.watchHandlers(s)
	return s
}

// watchHandlers makes every change of a source's objects mark the
// services they belong to (before and after) for the watchers.
func (r *Registry) watchHandlers(s *source) {
	names := func(obj any) []string {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		switch o := obj.(type) {
		case *discoveryv1.EndpointSlice:
			if n := serviceOf(o); n != "" {
				return []string{n}
			}
		case *corev1.Pod:
			if n := kratosName(o); n != "" {
				return []string{n}
			}
		}
		return nil
	}
	_, _ = s.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { r.changed(names(obj)...) },
		UpdateFunc: func(old, obj any) {
			r.changed(names(old)...)
			r.changed(names(obj)...)
		},
		DeleteFunc: func(obj any) { r.changed(names(obj)...) },
	})
	_ = s.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		r.listFailed(s.String(), err)
	})
}

// trimSlice keeps of an EndpointSlice what reads use: the informers'
// memory then holds no managed fields nor others' annotations.
func trimSlice(obj any) (any, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: es.Name, Namespace: es.Namespace, UID: es.UID, ResourceVersion: es.ResourceVersion,
			Labels: es.Labels,
		},
		AddressType: es.AddressType,
		Ports:       es.Ports,
	}
	if a := es.Annotations[AnnotationInstance]; a != "" {
		out.Annotations = map[string]string{AnnotationInstance: a}
	}
	if ownSlice(es) {
		return out, nil // its annotation is what is read
	}
	out.Endpoints = make([]discoveryv1.Endpoint, len(es.Endpoints))
	for i, e := range es.Endpoints {
		t := discoveryv1.Endpoint{Addresses: e.Addresses, Conditions: e.Conditions, NodeName: e.NodeName, Zone: e.Zone}
		if e.TargetRef != nil {
			t.TargetRef = &corev1.ObjectReference{Kind: e.TargetRef.Kind, Name: e.TargetRef.Name}
		}
		out.Endpoints[i] = t
	}
	return out, nil
}

// trimPod keeps of a Pod what Kratos' layout reads.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			DeletionTimestamp: pod.DeletionTimestamp,
			Labels:            map[string]string{},
			Annotations:       map[string]string{},
		},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIP: pod.Status.PodIP},
	}
	for _, k := range []string{KratosLabelID, KratosLabelName, KratosLabelVersion} {
		if v, ok := pod.Labels[k]; ok {
			out.Labels[k] = v
		}
	}
	for _, k := range []string{KratosAnnotationMetadata, KratosAnnotationProtocols} {
		if v, ok := pod.Annotations[k]; ok {
			out.Annotations[k] = v
		}
	}
	for _, c := range pod.Spec.Containers {
		if len(c.Ports) > 0 {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
	}
	return out, nil
}

// listWatch is the ListerWatcher of the registry's informers. It keeps
// client-go's reflector out of its own retry schedule (up to 30 s between
// attempts, however soon the API server is back): a request that finds the
// API server unreachable waits for the registry's probe to see it answer
// again (every Config.ProbeInterval) and is then sent again, so informers
// resume within one probe interval of the API server's return. Any other
// failure (410 Gone, 403) goes to the reflector, which relists or backs
// off.
//
// It also makes the reflector list again, instead of resuming its watch
// from the last resource version, after anything that may have changed
// the API server's history under it: an outage (a request found the
// server unreachable since the last list), or a watch that ended well
// before its timeout (the server restarted, or the connection broke). An
// API server whose etcd was wiped or restored from a backup may well
// accept the old resource version (its own writes at start, its leases,
// soon pass it) and serve a watch from it that never mentions what the new
// history lacks; a list is the only way to know. The resumed watch is
// answered with 410 Expired, which the reflector handles by listing.
type listWatch struct {
	r             *Registry
	what          string
	selector      string // label selector
	fieldSelector string
	list          func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch         func(context.Context, metav1.ListOptions) (watch.Interface, error)

	mu         sync.Mutex    // guards the fields below
	outages    int64         // reach's outage count at the last list
	watchStart time.Time     // when the current watch started; zero after a list
	watchLimit time.Duration // its requested timeout
}

var _ cache.ListerWatcherWithContext = (*listWatch)(nil)

// earlyEnd is how much earlier than its timeout a watch must end to count
// as broken rather than expired.
const earlyEnd = 5 * time.Second

// ListWithContext implements cache.ListerWatcherWithContext.
func (lw *listWatch) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	o.LabelSelector, o.FieldSelector = lw.selector, lw.fieldSelector
	for {
		if err := lw.r.reach.wait(ctx); err != nil {
			return nil, err
		}
		outages := lw.r.reach.outageCount()
		lctx, cancel := context.WithTimeout(ctx, 6*lw.r.cfg.Timeout)
		obj, err := lw.list(lctx, o)
		cancel()
		switch {
		case err == nil:
			lw.r.reach.answered()
			lw.listed(outages, time.Time{}, 0)
			return obj, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case unavailable(err):
			lw.r.reach.failed(fmt.Errorf("list %s: %w", lw.what, err))
		default:
			return nil, err
		}
	}
}

// WatchWithContext implements cache.ListerWatcherWithContext. A watch
// with SendInitialEvents is a list (client-go's streaming list).
func (lw *listWatch) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	o.LabelSelector, o.FieldSelector = lw.selector, lw.fieldSelector
	initial := o.SendInitialEvents != nil && *o.SendInitialEvents
	if !initial && lw.suspect() {
		lw.r.log.Debug("listing "+lw.what+" again instead of resuming its watch: the API server may have changed since", "resource_version", o.ResourceVersion)
		return expired(), nil
	}
	for {
		if err := lw.r.reach.wait(ctx); err != nil {
			return nil, err
		}
		outages := lw.r.reach.outageCount()
		w, err := lw.startWatch(ctx, o)
		switch {
		case err == nil:
			lw.r.reach.answered()
			limit := time.Duration(0)
			if o.TimeoutSeconds != nil {
				limit = time.Duration(*o.TimeoutSeconds) * time.Second
			}
			if initial {
				lw.listed(outages, time.Now(), limit)
			} else {
				lw.mu.Lock()
				lw.watchStart, lw.watchLimit = time.Now(), limit
				lw.mu.Unlock()
			}
			return w, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case unavailable(err):
			lw.r.reach.failed(fmt.Errorf("watch %s: %w", lw.what, err))
		default:
			return nil, err
		}
	}
}

// startWatch sends a watch request, bounded by Config.Timeout until the
// server answers it (then the stream lives on with ctx). Without the
// bound, client-go's own retries of a watch whose connection cannot be
// made (ten, each up to a TLS handshake timeout) hold it for minutes
// behind a partition.
func (lw *listWatch) startWatch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	wctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(lw.r.cfg.Timeout, cancel)
	w, err := lw.watch(wctx, o)
	if !timer.Stop() { // the bound ran out first
		if err == nil {
			w.Stop()
		}
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no answer within %v: %w", lw.r.cfg.Timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return ctxWatch{w, cancel}, nil
}

// ctxWatch is a watch whose Stop also ends the context of its request.
type ctxWatch struct {
	watch.Interface
	cancel context.CancelFunc
}

func (w ctxWatch) Stop() {
	w.Interface.Stop()
	w.cancel()
}

// listed records a successful list: as of outages, and, for a streaming
// list, the watch it goes on as.
func (lw *listWatch) listed(outages int64, start time.Time, limit time.Duration) {
	lw.mu.Lock()
	lw.outages, lw.watchStart, lw.watchLimit = outages, start, limit
	lw.mu.Unlock()
	lw.r.listOK(lw.what)
	lw.r.lists.Add(1)
}

// suspect reports whether a watch about to resume may miss a change of
// history: the server was unreachable since the last list, or the last
// watch ended early.
func (lw *listWatch) suspect() bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.r.reach.outageCount() != lw.outages {
		return true
	}
	return !lw.watchStart.IsZero() && lw.watchLimit > earlyEnd && time.Since(lw.watchStart) < lw.watchLimit-earlyEnd
}

// expired returns a watch whose only event is 410 Expired: the reflector
// lists again.
func expired() watch.Interface {
	ch := make(chan watch.Event, 1)
	ch <- watch.Event{Type: watch.Error, Object: &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired,
		Message: "regchain: list again: the API server may have changed its history since the last list",
	}}
	close(ch)
	return watch.NewProxyWatcher(ch)
}

// List implements cache.Lister (client-go uses ListWithContext).
func (lw *listWatch) List(o metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), o)
}

// Watch implements cache.Watcher (client-go uses WatchWithContext).
func (lw *listWatch) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), o)
}

// reach tracks whether the API server answers. While it does not, one
// probe (GET /readyz) runs every ProbeInterval, and the requests that
// found it unreachable wait for the probe's success instead of backing
// off each on its own.
type reach struct {
	r *Registry

	mu      sync.Mutex    // guards the fields below
	down    bool          // a request found the server unreachable, no answer since
	since   time.Time     // when down last changed
	err     error         // the failure that made it down
	changed chan struct{} // closed (and replaced) at each change of down
	probing bool          // the probe goroutine runs
	outages int64         // how many times down became true
}

func newReach(r *Registry) *reach {
	return &reach{r: r, changed: make(chan struct{})}
}

// state returns whether the server is known to be unreachable, a channel
// closed at the next change, and why.
func (x *reach) state() (down bool, changed <-chan struct{}, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.down, x.changed, x.err
}

// outageCount returns how many outages there have been.
func (x *reach) outageCount() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.outages
}

// failed records that a request found the server unreachable, tells the
// watchers (once per outage) and starts the probe.
func (x *reach) failed(err error) {
	x.mu.Lock()
	wasDown := x.down
	x.err = err
	if !wasDown {
		x.down = true
		x.outages++
		x.since = time.Now()
		close(x.changed)
		x.changed = make(chan struct{})
	}
	start := !x.probing
	x.probing = true
	x.mu.Unlock()
	if !wasDown {
		x.r.log.Warn("API server unreachable: reads answer ErrUnavailable, informers and upkeep wait for it", "err", err)
		x.r.failWatchers(fmt.Errorf("kubernetes: %w: %w", registry.ErrUnavailable, err))
	}
	if start && !x.r.goBackground(x.probe) {
		x.mu.Lock()
		x.probing = false
		x.mu.Unlock()
	}
}

// answered records an answer of the server.
func (x *reach) answered() {
	x.mu.Lock()
	if !x.down {
		x.mu.Unlock()
		return
	}
	x.down, x.err = false, nil
	d := time.Since(x.since)
	x.since = time.Now()
	close(x.changed)
	x.changed = make(chan struct{})
	x.mu.Unlock()
	x.r.log.Info("API server answers again", "after", d.Round(time.Millisecond))
}

// wait returns once the server is not known to be unreachable, or ctx's
// error.
func (x *reach) wait(ctx context.Context) error {
	for {
		down, changed, _ := x.state()
		if !down {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// probe asks the server whether it is ready, every ProbeInterval, until it
// answers or the registry closes.
func (x *reach) probe(ctx context.Context) {
	defer func() {
		x.mu.Lock()
		x.probing = false
		x.mu.Unlock()
	}()
	t := time.NewTimer(x.r.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if down, _, _ := x.state(); !down {
			return
		}
		if err := x.r.ping(ctx); err == nil {
			x.answered()
			return
		} else if ctx.Err() == nil {
			x.mu.Lock()
			x.err = err
			x.mu.Unlock()
		}
		t.Reset(x.r.cfg.ProbeInterval)
	}
}

// informerContext returns ctx carrying a klog logger that writes to the
// registry's slog logger, so that client-go's log lines about the
// registry's informers go where the registry's own go.
func (r *Registry) informerContext(ctx context.Context) context.Context {
	return klog.NewContext(ctx, logr.FromSlogHandler(r.log.Handler()))
}

// revision returns the newest resource version the sources have synced
// to, as a number (0 when none parses: resource versions are opaque to
// clients, though the API server's are etcd revisions).
func (r *Registry) revision() int64 {
	var rev int64
	for _, s := range r.sources {
		if v, err := strconv.ParseInt(s.inf.LastSyncResourceVersion(), 10, 64); err == nil && v > rev {
			rev = v
		}
	}
	return rev
}

// listOK clears the read failure of a source.
func (r *Registry) listOK(what string) {
	r.mu.Lock()
	delete(r.listErrs, what)
	r.mu.Unlock()
}

// listFailed records a failed list or watch of a source that was not an
// outage (those wait in listWatch): a refusal (403), a bad selector. The
// reflector retries with its own backoff; the watchers hear of it as a
// transient error, and reads that wait for the first sync return it.
func (r *Registry) listFailed(what string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	cerr := classify(err)
	r.mu.Lock()
	first := r.listErrs[what] == nil
	r.listErrs[what] = cerr
	close(r.errMoved)
	r.errMoved = make(chan struct{})
	r.mu.Unlock()
	if first {
		r.log.Warn("cannot read "+what, "err", cerr)
	} else {
		r.log.Debug("cannot read "+what, "err", cerr)
	}
	r.failWatchers(fmt.Errorf("kubernetes: read %s: %w", what, cerr))
}
