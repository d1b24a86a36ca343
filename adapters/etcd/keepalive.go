package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/internal/backoff"
	"github.com/regchain/regchain/registry"
)

// registration is one instance kept alive by its own goroutine (run), the
// only writer of its key once Register has returned.
type registration struct {
	c      *conn
	key    string
	ctx    context.Context // ends the keeper; child of the registry's context
	cancel context.CancelFunc
	done   chan struct{}   // closed when run returns
	reqs   chan *updateReq // updates from Register, served by run
	ttl    int64           // of its leases, in seconds

	mu       sync.Mutex // guards the fields below
	inst     *registry.Instance
	val      string // desired record
	lease    clientv3.LeaseID
	live     bool
	since    time.Time
	attempts int
	lastErr  error
}

// updateReq asks the keeper to write new data for its instance.
type updateReq struct {
	ctx  context.Context // the caller's: bounds this write only
	op   string
	inst *registry.Instance
	val  string
	done chan error // capacity 1
}

func newRegistration(c *conn, key string, inst *registry.Instance, val string, lease clientv3.LeaseID, ttl int64) *registration {
	ctx, cancel := context.WithCancel(c.ctx)
	return &registration{
		c:      c,
		key:    key,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		reqs:   make(chan *updateReq),
		ttl:    ttl,
		inst:   inst,
		val:    val,
		lease:  lease,
		live:   true,
		since:  time.Now(),
	}
}

// update hands new data to the keeper and waits for its first write.
func (g *registration) update(ctx context.Context, op string, inst *registry.Instance, val string) error {
	req := &updateReq{ctx: ctx, op: op, inst: inst, val: val, done: make(chan error, 1)}
	select {
	case g.reqs <- req:
	case <-ctx.Done():
		return g.c.wrapErr(ctx, op, ctx.Err())
	case <-g.done:
		return g.c.errClosed(op)
	}
	select {
	case err := <-req.done:
		return err
	case <-g.done:
		return g.c.errClosed(op)
	}
}

// stop ends the keeper, waits for it and returns the lease it held (0 if
// none).
func (g *registration) stop() clientv3.LeaseID {
	g.cancel()
	<-g.done
	return g.currentLease()
}

func (g *registration) state() registry.RegistrationState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return registry.RegistrationState{
		Instance:  g.inst.Clone(),
		Live:      g.live,
		Since:     g.since,
		Attempts:  g.attempts,
		LastError: g.lastErr,
	}
}

func (g *registration) value() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.val
}

func (g *registration) currentLease() clientv3.LeaseID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lease
}

func (g *registration) setLease(id clientv3.LeaseID) {
	g.mu.Lock()
	g.lease = id
	g.mu.Unlock()
}

func (g *registration) isLive() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live
}

// markLive records a successful write.
func (g *registration) markLive() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.live {
		g.live = true
		g.since = time.Now()
	}
	g.attempts = 0
	g.lastErr = nil
}

// markDown records that the registration is no longer held by etcd (or
// holds stale data); failed says whether it was an attempt to restore it.
func (g *registration) markDown(err error, failed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.live {
		g.live = false
		g.since = time.Now()
	}
	if failed {
		g.attempts++
	}
	g.lastErr = err
}

// keeper is the state of run, owned by its goroutine.
type keeper struct {
	g *registration
	c *conn

	lease     clientv3.LeaseID // 0 when none is held
	granted   time.Time        // when lease was granted
	stale     clientv3.LeaseID // a lease given up on, revoked after the next grant
	written   string           // the record last written
	lastWrite int64            // revision of our last write

	ka       <-chan *clientv3.LeaseKeepAliveResponse
	kaCancel context.CancelFunc
	wch      clientv3.WatchChan // the own key's watch, once started
	wReady   chan clientv3.WatchChan
	wCancel  context.CancelFunc

	dirty   bool            // the key must be (re)written
	verify  bool            // the own-key watch was lost: check the key, watch again
	bo      backoff.Backoff // retry schedule of writes and checks
	retryAt time.Time       // no attempt before this

	fixBo   backoff.Backoff // damps fights with another writer of the key
	lastFix time.Time
}

// run keeps the registration alive until its context ends: it drains the
// keepalive channel, watches its own key and restores it whenever the
// lease is gone or the key was deleted or overwritten, retrying with
// capped backoff for as long as the registration lives.
func (g *registration) run(lease clientv3.LeaseID, rev int64) {
	defer close(g.done)
	k := &keeper{
		g:         g,
		c:         g.c,
		lease:     lease,
		granted:   time.Now(),
		written:   g.value(),
		lastWrite: rev,
		bo:        backoff.Backoff{Base: 100 * time.Millisecond, Max: g.c.maxBackoff},
		fixBo:     backoff.Backoff{Base: 100 * time.Millisecond, Max: g.c.maxBackoff},
	}
	defer k.release()
	k.startKeepAlive()
	k.startWatch(rev + 1)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	hist, back := k.c.historyChanged.Wait(), k.c.reconnected.Wait()
	for {
		if g.ctx.Err() != nil {
			return
		}
		pending := k.dirty || k.lease == 0 || k.verify
		if pending && !time.Now().Before(k.retryAt) {
			var err error
			if k.dirty || k.lease == 0 {
				err = k.write(g.ctx)
			} else {
				err = k.check(g.ctx)
			}
			if err != nil {
				if g.ctx.Err() != nil {
					return
				}
				k.failed(err)
			}
			continue
		}
		var retry <-chan time.Time
		if pending {
			timer.Reset(time.Until(k.retryAt))
			retry = timer.C
		}
		select {
		case <-g.ctx.Done():
			return
		case <-retry:
		case <-hist:
			hist = k.c.historyChanged.Wait()
			k.historyChanged()
		case <-back:
			back = k.c.reconnected.Wait()
			if pending {
				// etcd answers again: retry now, not when the backoff
				// timer says.
				k.bo.Reset()
				k.retryAt = time.Time{}
			}
		case ka, ok := <-k.ka:
			if !ok {
				k.leaseLost()
			} else if ka != nil {
				k.c.answered() // a renewal's answer proves etcd healthy for Ping
			}
		case ch := <-k.wReady:
			k.wch, k.wReady = ch, nil
		case wr, ok := <-k.wch:
			k.onWatch(wr, ok)
		case req := <-g.reqs:
			k.handle(req)
		}
		timer.Stop()
	}
}

// release stops the keepalive and the watch.
func (k *keeper) release() {
	if k.kaCancel != nil {
		k.kaCancel()
	}
	k.stopWatch()
}

func (k *keeper) startKeepAlive() {
	if k.kaCancel != nil {
		k.kaCancel()
	}
	ctx, cancel := context.WithCancel(k.g.ctx)
	// On error (the client is closed) ch is closed: the loop sees the lease
	// as lost and retries, which reports the error. WithRequireLeader: when
	// the member carrying the keepalive stream loses its leader (cut off
	// from the majority), clientv3 closes ch at once instead of when the
	// TTL has run out on its side, and the loop takes the lease back
	// through a member that has a leader before it expires.
	ch, _ := k.c.client.KeepAlive(clientv3.WithRequireLeader(ctx), k.lease)
	k.ka, k.kaCancel = ch, cancel
}

// startWatch watches the own key from revision from. clientv3's Watch
// blocks while its stream is (re)connecting, so it is called on a helper
// goroutine and the loop picks the channel up from wReady.
//
// The watch is made WithRequireLeader, as the namespace watch (see
// follower.follow): clientv3 puts watches whose contexts carry the same
// metadata on one gRPC stream, so a process's own-key watches and its
// namespace watch share one stream to etcd instead of costing one each on
// both sides. A watch ended by a lost leader is handled like any other end:
// check the key, watch again.
func (k *keeper) startWatch(from int64) {
	k.stopWatch()
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(k.g.ctx))
	ready := make(chan clientv3.WatchChan, 1)
	k.c.spawn(func() {
		ready <- k.c.client.Watch(ctx, k.g.key, clientv3.WithRev(from))
	})
	k.wReady, k.wCancel = ready, cancel
}

// watching reports whether the own-key watch is running or starting.
func (k *keeper) watching() bool { return k.wch != nil || k.wReady != nil }

func (k *keeper) stopWatch() {
	if k.wCancel != nil {
		k.wCancel()
	}
	k.wch, k.wReady, k.wCancel = nil, nil, nil
}

// dropLease forgets the current lease; stale says it may still exist and
// should be revoked once a new one holds the key.
func (k *keeper) dropLease(stale bool) {
	if k.kaCancel != nil {
		k.kaCancel()
		k.kaCancel = nil
	}
	k.ka = nil
	if stale {
		k.stale = k.lease
	}
	k.lease = 0
	k.g.setLease(0)
}

func (k *keeper) leaseLost() {
	if k.g.ctx.Err() != nil {
		return
	}
	k.c.log.Warn("etcd: lease lost; registering again", "key", k.g.key, "lease", int64(k.lease))
	young := time.Since(k.granted) < time.Second
	k.dropLease(true)
	k.retryAt = time.Time{}
	if young {
		// A lease lost right after its grant: do not loop on grants.
		k.retryAt = time.Now().Add(k.bo.Next())
	}
	k.g.markDown(errLeaseLost, false)
}

// onWatch looks at the own key's events: a delete, or a put that is not our
// last write, means someone else touched the key.
func (k *keeper) onWatch(wr clientv3.WatchResponse, ok bool) {
	if !ok || wr.Err() != nil {
		if k.g.ctx.Err() != nil {
			return
		}
		k.c.log.Debug("etcd: own-key watch ended; checking the key", "key", k.g.key, "error", wr.Err())
		k.stopWatch()
		k.verify = true
		return
	}
	tampered, deleted := false, false
	for _, ev := range wr.Events {
		if ev.Kv.ModRevision <= k.lastWrite {
			continue // superseded by our own later write
		}
		switch ev.Type {
		case mvccpb.DELETE:
			tampered, deleted = true, true
		case mvccpb.PUT:
			deleted = false
			if clientv3.LeaseID(ev.Kv.Lease) != k.lease || string(ev.Kv.Value) != k.written {
				tampered = true
			}
		}
	}
	if tampered {
		k.tampered(deleted)
	}
}

// historyChanged makes the keeper check its record in the new history and
// watch it from there: the own-key watch of the old history waits for a
// revision the new one may reach much later, and misses every change before.
// Until the check, the registration is not reported Live.
func (k *keeper) historyChanged() {
	k.stopWatch()
	k.verify = true
	k.bo.Reset()
	k.retryAt = time.Time{}
	k.g.markDown(errHistoryChanged, false)
}

// tampered schedules restoring the key. A deleted key is restored at once,
// every time: the other writer (an operator, a process sharing the
// instance ID that deregistered) is not fighting. An overwritten key is
// restored at once the first time; repeated overwrites back off, so two
// processes registering the same instance do not fight at network speed.
func (k *keeper) tampered(deleted bool) {
	k.c.log.Warn("etcd: registered key deleted or overwritten by another client; restoring it", "key", k.g.key, "deleted", deleted)
	k.dirty = true
	k.g.markDown(errKeyTampered, false)
	if deleted {
		k.retryAt = time.Time{}
		return
	}
	now := time.Now()
	var delay time.Duration
	if !k.lastFix.IsZero() && now.Sub(k.lastFix) < 2*k.c.maxBackoff {
		delay = k.fixBo.Next()
	} else {
		k.fixBo.Reset()
	}
	k.lastFix = now
	if at := now.Add(delay); at.After(k.retryAt) {
		k.retryAt = at
	}
}

// handle serves an update from Register: it writes at once, bounded by the
// caller's ctx, and reports the result. On failure the new data stays
// desired and the loop keeps retrying.
func (k *keeper) handle(req *updateReq) {
	k.g.mu.Lock()
	k.g.inst, k.g.val = req.inst, req.val
	k.g.mu.Unlock()
	if req.val == k.written && k.lease != 0 && !k.dirty && !k.verify {
		req.done <- nil // already held as is
		return
	}
	k.dirty = true
	ctx, cancel := context.WithCancel(k.g.ctx)
	stop := context.AfterFunc(req.ctx, cancel)
	err := k.write(ctx)
	stop()
	cancel()
	if err != nil {
		if k.g.ctx.Err() != nil {
			req.done <- k.c.errClosed(req.op)
			return
		}
		k.failed(err)
		req.done <- k.c.wrapErr(req.ctx, req.op, err)
		return
	}
	req.done <- nil
}

// failed records a failed attempt and schedules the next one.
func (k *keeper) failed(err error) {
	k.g.markDown(err, true)
	k.retryAt = time.Now().Add(k.bo.Next())
	k.c.log.Debug("etcd: restoring registration failed; will retry", "key", k.g.key, "attempts", k.bo.Attempts(), "error", err)
}

// write makes the key hold the desired record under a live lease: a put on
// the current lease, or a new lease and a put when there is none or etcd
// no longer knows it.
func (k *keeper) write(parent context.Context) error {
	ctx, cancel := k.c.opCtx(parent)
	defer cancel()
	val := k.g.value()
	recovered := k.lease == 0 || k.dirty && !k.g.isLive()
	if k.lease == 0 && k.stale != 0 {
		// The keepalive gave up (no answer for a TTL: etcd down or out of
		// reach), but etcd may have kept the lease, and the record with it:
		// a restarted etcd restores its leases with a fresh TTL. Taking it
		// back keeps the record present throughout.
		var ka *clientv3.LeaseKeepAliveResponse
		err := withLeader(ctx, func(ctx context.Context) (err error) {
			ka, err = k.c.client.KeepAliveOnce(ctx, k.stale)
			return err
		})
		if err == nil && ka.TTL > 0 {
			k.c.observe(ka.ResponseHeader)
			k.lease, k.granted, k.stale = k.stale, time.Now(), 0
			k.g.setLease(k.lease)
			k.startKeepAlive()
		} else if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("keepalive: %w", err)
		}
	}
	if k.lease != 0 {
		rev, err := k.putIfChanged(ctx, val)
		if err == nil {
			k.wrote(rev, val, recovered)
			return nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		k.dropLease(false)
	}
	lease, rev, err := grantPut(ctx, k.c, k.g.key, val, k.g.ttl)
	if err != nil {
		return err
	}
	k.lease, k.granted = lease, time.Now()
	k.g.setLease(lease)
	k.startKeepAlive()
	k.wrote(rev, val, true)
	if k.stale != 0 {
		// The key is on the new lease now: revoking the old one (if etcd
		// still has it) deletes nothing of ours.
		withLeader(ctx, func(ctx context.Context) error { //nolint:errcheck // best effort; it expires anyway
			_, err := k.c.client.Revoke(ctx, k.stale)
			return err
		})
		k.stale = 0
	}
	return nil
}

// putIfChanged makes the key hold val on the current lease, writing only
// when it does not already: an unchanged record is not written again, so a
// reconnecting fleet does not send every watcher an event per process. It
// returns the record's revision.
func (k *keeper) putIfChanged(ctx context.Context, val string) (int64, error) {
	var resp *clientv3.TxnResponse
	err := withLeader(ctx, func(ctx context.Context) (err error) {
		resp, err = k.c.client.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(k.g.key), "=", val),
				clientv3.Compare(clientv3.LeaseValue(k.g.key), "=", k.lease)).
			Then(clientv3.OpGet(k.g.key)).
			Else(clientv3.OpPut(k.g.key, val, clientv3.WithLease(k.lease))).
			Commit()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put: %w", err)
	}
	k.c.observe(resp.Header)
	if resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			return kvs[0].ModRevision, nil
		}
	}
	return resp.Header.Revision, nil
}

func (k *keeper) wrote(rev int64, val string, recovered bool) {
	k.written = val
	k.lastWrite = rev
	k.dirty, k.verify = false, false
	k.bo.Reset()
	k.retryAt = time.Time{}
	if !k.watching() {
		k.startWatch(rev + 1)
	}
	if recovered {
		k.c.log.Info("etcd: registration restored", "key", k.g.key, "lease", int64(k.lease))
	}
	k.g.markLive()
}

// check reads the key after the own-key watch was lost (compaction, a
// closed stream), restores it if needed and watches again.
func (k *keeper) check(parent context.Context) error {
	ctx, cancel := k.c.opCtx(parent)
	defer cancel()
	var resp *clientv3.GetResponse
	err := withLeader(ctx, func(ctx context.Context) (err error) {
		resp, err = k.c.client.Get(ctx, k.g.key)
		return err
	})
	if err != nil {
		return fmt.Errorf("check key: %w", err)
	}
	k.c.observe(resp.Header)
	ok := len(resp.Kvs) == 1 &&
		clientv3.LeaseID(resp.Kvs[0].Lease) == k.lease &&
		string(resp.Kvs[0].Value) == k.written
	k.verify = false
	k.startWatch(resp.Header.Revision + 1)
	if !ok {
		k.tampered(len(resp.Kvs) == 0)
		return nil
	}
	// Revisions may have started again (a new history): judge later events
	// against this one.
	k.lastWrite = resp.Kvs[0].ModRevision
	k.bo.Reset()
	k.g.markLive()
	return nil
}

// grantPut grants a lease of ttl seconds and puts key=val under it. It
// returns the lease and the put's revision.
//
// Both requests need a leader (see withLeader): a member cut off from the
// majority refuses them at once and they go to another member.
func grantPut(ctx context.Context, c *conn, key, val string, ttl int64) (clientv3.LeaseID, int64, error) {
	var grant *clientv3.LeaseGrantResponse
	err := withLeader(ctx, func(ctx context.Context) (err error) {
		grant, err = c.client.Grant(ctx, ttl)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("grant lease: %w", err)
	}
	c.observe(grant.ResponseHeader)
	var resp *clientv3.PutResponse
	err = withLeader(ctx, func(ctx context.Context) (err error) {
		resp, err = c.client.Put(ctx, key, val, clientv3.WithLease(grant.ID))
		return err
	})
	if err != nil {
		// The unused lease runs out by itself.
		return 0, 0, fmt.Errorf("put: %w", err)
	}
	c.observe(resp.Header)
	return grant.ID, resp.Header.Revision, nil
}
