package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// fieldManager names this package in the objects' managed fields.
const fieldManager = "regchain"

// registration is one instance this registry keeps on the server, or, with
// remove set, one whose removal it retries.
type registration struct {
	in     *registry.Instance         // a private copy
	want   *discoveryv1.EndpointSlice // the slice to hold; nil in Kratos' layout
	object string                     // the slice's name, or the Pod's
	remove bool                       // a Deregister whose delete failed: delete it

	// Guarded by Registry.mu.
	due   bool            // the upkeep must check it
	next  time.Time       // not before
	live  bool            // the server held it at the last check
	since time.Time       // when live last changed
	tries int             // failed checks since the last success
	err   error           // the last check's error
	b     backoff.Backoff // the retry schedule
}

// keeper is the upkeep's informer: the slices of this package in
// Config.Namespace, or, in Kratos' layout, this process's Pod.
type keeper struct {
	inf cache.SharedIndexInformer
}

// ownerRef is the looked-up owner of this process's slices; ref is nil
// when there is none.
type ownerRef struct {
	ref *metav1.OwnerReference
}

// ValidateInstance implements registry.Validator: what Register would
// refuse, without I/O.
func (r *Registry) ValidateInstance(in *registry.Instance) error {
	if err := registry.Validate(in); err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	var err error
	if r.cfg.Kratos == KratosReadWrite {
		err = validateForKratos(in)
	} else {
		err = validateForSlice(in)
	}
	if err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	return nil
}

// Register implements registry.Registry. It writes the instance's
// EndpointSlice (or, with KratosReadWrite, labels this process's Pod) and
// keeps it on the server until Deregister or Close (see the package doc,
// "Registrations"). ctx bounds the first write; when it fails nothing is
// kept. A refusal for the client's permissions wraps registry.ErrInvalid
// and ErrPermissionDenied.
func (r *Registry) Register(ctx context.Context, in *registry.Instance) error {
	if r.isClosed() {
		return errClosed("register")
	}
	if err := r.ValidateInstance(in); err != nil {
		return fmt.Errorf("kubernetes: register: %w", errors.Unwrap(err))
	}
	in = in.Clone()
	unlock, err := r.locks.lock(ctx, in.Key())
	if err != nil {
		return fmt.Errorf("kubernetes: register %s: %w", in, err)
	}
	defer unlock()
	reg := &registration{in: in}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if r.cfg.Kratos == KratosReadWrite {
		reg.object = r.cfg.Pod
		if err := r.kratosExclusive(in); err != nil {
			return fmt.Errorf("kubernetes: register %s: %w", in, err)
		}
		if err := r.writeKratos(ctx, in); err != nil {
			return fmt.Errorf("kubernetes: register %s: %w", in, err)
		}
	} else {
		owner, err := r.owner(ctx)
		if err != nil {
			return fmt.Errorf("kubernetes: register %s: %w", in, err)
		}
		if reg.want, err = encodeSlice(in, r.cfg.Namespace, owner); err != nil {
			return fmt.Errorf("kubernetes: register: %w", err)
		}
		reg.object = reg.want.Name
		if err := r.writeSlice(ctx, reg.want); err != nil {
			return fmt.Errorf("kubernetes: register %s: %w", in, err)
		}
	}
	reg.live, reg.since = true, time.Now()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed("register")
	}
	r.regs[in.Key()] = reg
	r.mu.Unlock()
	r.startKeeper()
	r.log.Debug("registered", "instance", in.String(), "object", r.cfg.Namespace+"/"+reg.object)
	return nil
}

// kratosExclusive refuses a second instance on this process's Pod: Kratos'
// layout holds one.
func (r *Registry) kratosExclusive(in *registry.Instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, reg := range r.regs {
		if k != in.Key() && !reg.remove {
			return fmt.Errorf("%w: Pod %s/%s already carries %s, and Kratos' layout holds one instance per Pod", registry.ErrInvalid, r.cfg.Namespace, r.cfg.Pod, reg.in)
		}
	}
	return nil
}

// Deregister implements registry.Registry. It stops the upkeep and deletes
// the instance's EndpointSlice (or removes Kratos' labels and annotations
// from the Pod). For an instance this registry does not hold, it deletes
// what the server holds under the instance's name and ID. When the API
// server cannot be reached, Deregister returns an error wrapping
// registry.ErrUnavailable and the upkeep goes on trying to delete it until
// it succeeds, the instance is registered again, or Close.
func (r *Registry) Deregister(ctx context.Context, in *registry.Instance) error {
	if r.isClosed() {
		return errClosed("deregister")
	}
	if err := registry.ValidateKey(in); err != nil {
		return fmt.Errorf("kubernetes: deregister: %w", err)
	}
	key := in.Key()
	unlock, err := r.locks.lock(ctx, key)
	if err != nil {
		return fmt.Errorf("kubernetes: deregister %s: %w", in, err)
	}
	defer unlock()
	r.mu.Lock()
	reg := r.regs[key]
	delete(r.regs, key)
	r.mu.Unlock()
	if reg == nil {
		reg = &registration{in: &registry.Instance{Name: in.Name, ID: in.ID}, object: sliceName(in.Name, in.ID)}
		if r.cfg.Kratos == KratosReadWrite {
			reg.object = r.cfg.Pod
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	err = r.removeObject(ctx, reg)
	if err != nil && errors.Is(err, registry.ErrUnavailable) {
		rm := &registration{in: reg.in, object: reg.object, remove: true, due: true}
		r.mu.Lock()
		if !r.closed && r.regs[key] == nil {
			r.regs[key] = rm
		}
		r.mu.Unlock()
		r.startKeeper()
		r.wakeKeeper()
	}
	if err != nil {
		return fmt.Errorf("kubernetes: deregister %s: %w", in, err)
	}
	return nil
}

// removeObject deletes what reg holds on the server; absent is done.
func (r *Registry) removeObject(ctx context.Context, reg *registration) error {
	if r.cfg.Kratos == KratosReadWrite {
		pod, err := r.client.CoreV1().Pods(r.cfg.Namespace).Get(ctx, reg.object, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return classify(err)
		case pod.Labels[KratosLabelName] != reg.in.Name || pod.Labels[KratosLabelID] != reg.in.ID && !(pod.Labels[KratosLabelID] == "" && pod.Name == reg.in.ID):
			return nil // carries another instance, or none
		}
		patch, err := kratosPatch(nil)
		if err != nil {
			return err
		}
		_, err = r.client.CoreV1().Pods(r.cfg.Namespace).Patch(ctx, reg.object, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return classify(err)
	}
	api := r.client.DiscoveryV1().EndpointSlices(r.cfg.Namespace)
	err := api.Delete(ctx, reg.object, metav1.DeleteOptions{})
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return classify(err)
}

// owner returns the owner reference of this process's slices: its Pod,
// looked up once. A Pod that cannot be read (absent, or the client may not
// get pods) gives no owner, with a warning; an unreachable API server is
// an error.
func (r *Registry) owner(ctx context.Context) (*metav1.OwnerReference, error) {
	if r.cfg.Pod == "" {
		return nil, nil
	}
	r.mu.Lock()
	o := r.ownerRef
	r.mu.Unlock()
	if o != nil {
		return o.ref, nil
	}
	pod, err := r.client.CoreV1().Pods(r.cfg.Namespace).Get(ctx, r.cfg.Pod, metav1.GetOptions{})
	o = &ownerRef{}
	switch {
	case err == nil:
		o.ref = &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		r.log.Warn("cannot read this process's Pod: its EndpointSlices get no owner, and stay after the Pod is gone until deregistered", "pod", r.cfg.Namespace+"/"+r.cfg.Pod, "err", err)
	default:
		return nil, classify(err)
	}
	r.mu.Lock()
	r.ownerRef = o
	r.mu.Unlock()
	return o.ref, nil
}

// writeSlice creates want, or brings the slice of that name to it: the
// fields this package writes are replaced, what others added is kept.
func (r *Registry) writeSlice(ctx context.Context, want *discoveryv1.EndpointSlice) error {
	api := r.client.DiscoveryV1().EndpointSlices(want.Namespace)
	for attempt := 0; ; attempt++ {
		_, err := api.Create(ctx, want, metav1.CreateOptions{FieldManager: fieldManager})
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return classify(err)
		}
		cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && attempt < 5:
			continue // deleted meanwhile
		case err != nil:
			return classify(err)
		case cur.Labels[LabelManagedBy] != ManagedBy:
			return fmt.Errorf("%w: EndpointSlice %s/%s exists and is managed by %q, not by %s", registry.ErrInvalid, cur.Namespace, cur.Name, cur.Labels[LabelManagedBy], ManagedBy)
		case sameSlice(cur, want):
			return nil
		case cur.AddressType != want.AddressType: // immutable: replace the slice
			err := api.Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return classify(err)
			}
			continue
		}
		upd := cur.DeepCopy()
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		for k, v := range want.Labels {
			upd.Labels[k] = v
		}
		for k, v := range want.Annotations {
			upd.Annotations[k] = v
		}
		upd.OwnerReferences = want.OwnerReferences
		upd.Endpoints, upd.Ports = want.Endpoints, want.Ports
		_, err = api.Update(ctx, upd, metav1.UpdateOptions{FieldManager: fieldManager})
		switch {
		case err == nil:
			return nil
		case (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) && attempt < 5:
			continue // changed meanwhile: read it again
		case apierrors.IsConflict(err):
			return fmt.Errorf("%w: EndpointSlice %s/%s keeps changing under this write (another process registering the same instance?): %w", registry.ErrUnavailable, cur.Namespace, cur.Name, err)
		}
		return classify(err)
	}
}

// writeKratos labels and annotates this process's Pod with in.
func (r *Registry) writeKratos(ctx context.Context, in *registry.Instance) error {
	patch, err := kratosPatch(in)
	if err != nil {
		return err
	}
	_, err = r.client.CoreV1().Pods(r.cfg.Namespace).Patch(ctx, r.cfg.Pod, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: Pod %s/%s, which Kratos' layout labels, does not exist: %w", registry.ErrInvalid, r.cfg.Namespace, r.cfg.Pod, err)
	}
	return classify(err)
}

// Registrations implements registry.RegistrationReporter.
func (r *Registry) Registrations() []registry.RegistrationState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]registry.RegistrationState, 0, len(r.regs))
	for _, reg := range r.regs {
		if reg.remove {
			continue
		}
		out = append(out, registry.RegistrationState{
			Instance: reg.in.Clone(), Live: reg.live, Since: reg.since, Attempts: reg.tries, LastError: reg.err,
		})
	}
	slices.SortFunc(out, func(a, b registry.RegistrationState) int {
		return cmp.Or(cmp.Compare(a.Instance.Name, b.Instance.Name), cmp.Compare(a.Instance.ID, b.Instance.ID))
	})
	return out
}

// startKeeper starts the upkeep (its informer and goroutine), once.
func (r *Registry) startKeeper() {
	r.mu.Lock()
	if r.closed || r.keeper != nil {
		r.mu.Unlock()
		return
	}
	k := &keeper{}
	r.keeper = k
	r.mu.Unlock()
	ns := r.cfg.Namespace
	var lw *listWatch
	var obj runtime.Object
	if r.cfg.Kratos == KratosReadWrite {
		api := r.client.CoreV1().Pods(ns)
		field := fields.OneTermEqualSelector("metadata.name", r.cfg.Pod).String()
		lw = &listWatch{r: r, what: "this process's Pod", fieldSelector: field,
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
			watch: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return api.Watch(ctx, o)
			},
		}
		obj = &corev1.Pod{}
	} else {
		api := r.client.DiscoveryV1().EndpointSlices(ns)
		lw = &listWatch{r: r, what: "this package's endpointslices in namespace " + ns, selector: LabelManagedBy + "=" + ManagedBy,
			list: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
			watch: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return api.Watch(ctx, o)
			},
		}
		obj = &discoveryv1.EndpointSlice{}
	}
	k.inf = cache.NewSharedIndexInformerWithOptions(lw, obj, cache.SharedIndexInformerOptions{ObjectDescription: "regchain upkeep"})
	_ = k.inf.SetTransform(func(o any) (any, error) {
		if m, ok := o.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return o, nil
	})
	touch := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if m, ok := o.(metav1.Object); ok {
			r.recheck(m.GetName())
		}
	}
	_, _ = k.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    touch,
		UpdateFunc: func(_, o any) { touch(o) },
		DeleteFunc: touch,
	})
	_ = k.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		r.listFailed(lw.what, err)
	})
	ictx := r.informerContext(r.ctx)
	r.goBackground(func(context.Context) { k.inf.RunWithContext(ictx) })
	r.goBackground(r.upkeep)
}

// recheck marks the registration held in object name for the upkeep.
func (r *Registry) recheck(name string) {
	r.mu.Lock()
	found := false
	for _, reg := range r.regs {
		if reg.object == name {
			reg.due, reg.next = true, time.Time{}
			found = true
		}
	}
	r.mu.Unlock()
	if found {
		r.wakeKeeper()
	}
}

// wakeKeeper tells the upkeep it has work.
func (r *Registry) wakeKeeper() {
	select {
	case r.keepWake <- struct{}{}:
	default:
	}
}

// upkeep is the goroutine that keeps every registration on the server: it
// checks a registration when its object changes (the keeper's informer),
// retries a failed check with capped backoff, and waits for an
// unreachable API server to answer (then retries at once).
func (r *Registry) upkeep(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		down, changed, _ := r.reach.state()
		var due []*registration
		var next time.Time
		now := time.Now()
		r.mu.Lock()
		for _, reg := range r.regs {
			switch {
			case !reg.due:
			case !down && !reg.next.After(now):
				due = append(due, reg)
			case !down && (next.IsZero() || reg.next.Before(next)):
				next = reg.next
			}
		}
		r.mu.Unlock()
		for _, reg := range due {
			if ctx.Err() != nil {
				return
			}
			r.check(ctx, reg)
		}
		if len(due) > 0 {
			continue
		}
		d := time.Hour
		if !next.IsZero() {
			d = max(time.Until(next), 0)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-r.keepWake:
		case <-timer.C:
		case <-changed:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// check brings one registration's object to what it should be.
func (r *Registry) check(ctx context.Context, reg *registration) {
	key := reg.in.Key()
	unlock, err := r.locks.lock(ctx, key)
	if err != nil {
		return
	}
	defer unlock()
	r.mu.Lock()
	if r.regs[key] != reg {
		r.mu.Unlock()
		return // deregistered or replaced meanwhile
	}
	reg.due = false
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	held, err := r.ensure(cctx, reg)
	cancel()
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.regs[key] != reg {
		return
	}
	if reg.remove && err == nil {
		delete(r.regs, key)
		r.log.Info("deleted a deregistered instance the API server could not be asked to delete before", "instance", reg.in.String())
		return
	}
	if held != reg.live {
		reg.live, reg.since = held, now
	}
	if err == nil {
		if reg.tries > 0 {
			r.log.Info("registration restored", "instance", reg.in.String(), "after_attempts", reg.tries)
		}
		reg.tries, reg.err = 0, nil
		reg.b.Reset()
		return
	}
	if reg.tries == 0 {
		r.log.Warn("registration upkeep failed; retrying", "instance", reg.in.String(), "err", err)
	} else {
		r.log.Debug("registration upkeep failed; retrying", "instance", reg.in.String(), "attempt", reg.tries+1, "err", err)
	}
	reg.tries++
	reg.err = err
	reg.due = true
	reg.b.Max = r.cfg.MaxBackoff
	if unavailable(err) {
		r.reach.failed(err) // waits for the probe, then retries at once
		reg.next = now
	} else {
		reg.next = now.Add(reg.b.Next())
	}
}

// ensure makes the server hold reg (or, for a removal, not hold it). held
// reports whether the server holds the registration as it should be after
// the call.
func (r *Registry) ensure(ctx context.Context, reg *registration) (held bool, err error) {
	if reg.remove {
		return false, r.removeObject(ctx, reg)
	}
	cached, known := r.cachedObject(reg.object)
	if r.cfg.Kratos == KratosReadWrite {
		if pod, ok := cached.(*corev1.Pod); ok && known && kratosHolds(pod, reg.in) {
			return true, nil
		}
		if err := r.writeKratos(ctx, reg.in); err != nil {
			return false, err
		}
		return true, nil
	}
	if es, ok := cached.(*discoveryv1.EndpointSlice); ok && known && sameSlice(es, reg.want) {
		return true, nil
	}
	if err := r.writeSlice(ctx, reg.want); err != nil {
		return false, err
	}
	return true, nil
}

// cachedObject returns the keeper's cached object of that name; known is
// false when the keeper has not synced (the cache says nothing yet).
func (r *Registry) cachedObject(name string) (obj any, known bool) {
	r.mu.Lock()
	k := r.keeper
	r.mu.Unlock()
	if k == nil || !k.inf.HasSynced() {
		return nil, false
	}
	obj, exists, err := k.inf.GetStore().GetByKey(r.cfg.Namespace + "/" + name)
	if err != nil || !exists {
		return nil, true
	}
	return obj, true
}

// keyLocks serialises Register, Deregister and the upkeep per instance.
type keyLocks struct {
	mu sync.Mutex // guards m
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; guarded by keyLocks.mu
}

// lock locks key, or returns ctx's error. The returned func unlocks it.
func (k *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyLock)
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
