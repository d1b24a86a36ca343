// Command multidc is a datacenter-failure drill with nothing to install:
// two "datacenters", each with its own etcd (in-process) and two instances
// of the service "orders" (tiny TCP servers answering with their ID).
// Mirrors (package mirror) keep each datacenter's records in the other's
// registry, both ways. A reader in each datacenter reads through a chain
// over both registries (its own first) wrapped with locality preference
// (package locality): it calls instances of its own zone while there are
// enough of them.
//
// The drill kills datacenter A (its etcd and its instances), shows the
// reader in A calling B's instances with the source and age of what it
// reads, brings A back, shows the failback, and exits by itself in well
// under a minute.
//
//	go run ./examples/multidc
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/locality"
	"github.com/regchain/regchain/mirror"
	"github.com/regchain/regchain/registry"
)

const (
	service = "orders"
	region  = "eu"
	ttl     = 2 * time.Second // leases of instances and mirrored records
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "multidc:", err)
		os.Exit(1)
	}
}

// closers runs cleanups in reverse order.
type closers []func()

func (c *closers) add(f func()) { *c = append(*c, f) }
func (c closers) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// dc is one datacenter: its etcd and its instances.
type dc struct {
	name string
	dir  string
	etcd *embedetcd.Server
	apps []*app
}

func (d *dc) registry() (*etcd.Registry, error) {
	return etcd.New(etcd.Config{Endpoints: []string{d.etcd.Endpoint()}, TTL: ttl,
		MaxBackoff: 300 * time.Millisecond, Timeout: time.Second, DialTimeout: time.Second, Logger: quiet})
}

// app is one instance: a TCP server that writes its ID to every
// connection, registered in its datacenter.
type app struct {
	id  string
	reg *etcd.Registry
	ln  net.Listener
	wg  sync.WaitGroup
}

func startApp(ctx context.Context, d *dc, id string) (*app, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &app{id: id, ln: ln}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, id)
			c.Close()
		}
	}()
	if a.reg, err = d.registry(); err != nil {
		a.stop()
		return nil, err
	}
	in := &registry.Instance{ID: id, Name: service, Version: "v1",
		Endpoints: []string{"tcp://" + ln.Addr().String()},
		Metadata:  map[string]string{locality.KeyZone: d.name, locality.KeyRegion: region}}
	if err := a.reg.Register(ctx, in); err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

// stop kills the instance: no deregistration, its lease runs out.
func (a *app) stop() {
	a.ln.Close()
	a.wg.Wait()
	if a.reg != nil {
		a.reg.Close()
	}
}

func run(ctx context.Context, w io.Writer) error {
	var cl closers
	defer func() { cl.run() }() // cl grows below: evaluate it at return
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(w, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	tmp, err := os.MkdirTemp("", "regchain-multidc-")
	if err != nil {
		return err
	}
	cl.add(func() { os.RemoveAll(tmp) })

	dcs := map[string]*dc{}
	for _, name := range []string{"dc-a", "dc-b"} {
		d := &dc{name: name, dir: tmp + "/" + name}
		if d.etcd, err = embedetcd.Start(d.dir); err != nil {
			return err
		}
		cl.add(d.etcd.Stop)
		dcs[name] = d
	}
	a, b := dcs["dc-a"], dcs["dc-b"]
	cl.add(func() {
		for _, d := range dcs {
			for _, ap := range d.apps {
				ap.stop()
			}
		}
	})
	for _, d := range []*dc{a, b} {
		for i := 1; i <= 2; i++ {
			ap, err := startApp(ctx, d, fmt.Sprintf("%s%d", d.name[3:], i))
			if err != nil {
				return err
			}
			d.apps = append(d.apps, ap)
		}
	}
	logf("two datacenters up: dc-a runs orders a1 a2, dc-b runs orders b1 b2 (each in its own etcd)")

	// Mirrors, both ways.
	mctx, stopMirrors := context.WithCancel(context.Background())
	var mwg sync.WaitGroup
	cl.add(func() { stopMirrors(); mwg.Wait() })
	for _, pair := range [][2]*dc{{a, b}, {b, a}} {
		src, err := pair[0].registry()
		if err != nil {
			return err
		}
		cl.add(func() { src.Close() })
		dst, err := pair[1].registry()
		if err != nil {
			return err
		}
		cl.add(func() { dst.Close() })
		m, err := mirror.New(mirror.Config{Source: src, Target: dst, Origin: pair[0].name,
			StaleAfter: 2 * time.Second, MaxBackoff: 300 * time.Millisecond, Timeout: time.Second, Logger: quiet})
		if err != nil {
			return err
		}
		mwg.Add(1)
		go func() { defer mwg.Done(); m.Run(mctx) }()
	}

	// A reader in each datacenter.
	readers := map[string]*reader{}
	for _, pair := range [][2]*dc{{a, b}, {b, a}} {
		r, err := newReader(pair[0], pair[1])
		if err != nil {
			return err
		}
		cl.add(r.close)
		readers[pair[0].name] = r
	}
	ra, rb := readers["dc-a"], readers["dc-b"]

	if err := ra.await(ctx, "dc-a", "a1", "a2"); err != nil {
		return err
	}
	if err := rb.await(ctx, "dc-b", "b1", "b2"); err != nil {
		return err
	}
	logf("steady: reader in dc-a %s", ra.report())
	logf("steady: reader in dc-b %s", rb.report())

	logf("killing datacenter dc-a: its etcd and its instances a1 a2")
	for _, ap := range a.apps {
		ap.stop()
	}
	a.apps = nil
	a.etcd.Stop()
	if err := ra.await(ctx, "dc-b", "b1", "b2"); err != nil {
		return err
	}
	logf("failover: reader in dc-a %s", ra.report())
	logf("failover: reader in dc-b %s", rb.report())

	logf("bringing dc-a back: etcd, then a1 a2")
	if err := a.etcd.Start(); err != nil {
		return err
	}
	for i := 1; i <= 2; i++ {
		ap, err := startApp(ctx, a, fmt.Sprintf("a%d", i))
		if err != nil {
			return err
		}
		a.apps = append(a.apps, ap)
	}
	if err := ra.await(ctx, "dc-a", "a1", "a2"); err != nil {
		return err
	}
	logf("failback: reader in dc-a %s", ra.report())
	logf("failback: reader in dc-b %s", rb.report())
	logf("drill done")
	return nil
}

// reader is a client in one datacenter: it watches "orders" through a
// chain over both registries (its own first) with locality preference, and
// calls the instances it sees round robin.
type reader struct {
	home  string
	chain *chain.Chain
	reg   registry.Registry
	tiers []*etcd.Registry
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	state   *registry.Update
	calls   map[string]int // answers per instance since the last report
	failed  int            // failed calls since the last report
	lastErr error
	switchF int // failed calls while switching to the state awaited last
}

func newReader(home, other *dc) (*reader, error) {
	r := &reader{home: home.name, calls: map[string]int{}}
	var tiers []chain.Tier
	for _, d := range []*dc{home, other} {
		t, err := d.registry()
		if err != nil {
			r.close()
			return nil, err
		}
		r.tiers = append(r.tiers, t)
		tiers = append(tiers, chain.Tier{Name: d.name, Registry: t, ReadOnly: true})
	}
	c, err := chain.New(tiers, chain.WithName("reader-"+home.name), chain.WithLogger(quiet),
		chain.WithProbeInterval(200*time.Millisecond), chain.WithProbeTimeout(300*time.Millisecond),
		chain.WithCallTimeout(500*time.Millisecond), chain.WithFailbackAfter(time.Second),
		chain.WithGuard(chain.Guard{Window: 2 * time.Second}))
	if err != nil {
		r.close()
		return nil, err
	}
	r.chain = c
	r.reg = locality.Wrap(c, locality.Config{
		Self: locality.Locality{Zone: home.name, Region: region},
		// Leave the zone when it is empty; come back once both are there.
		Thresholds: locality.Thresholds{MinCount: 1, RecoverCount: 2},
	})
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	wt, err := r.reg.Watch(ctx, service)
	if err != nil {
		r.close()
		return nil, err
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		defer wt.Stop()
		for {
			u, err := wt.Next()
			if err != nil {
				if errors.Is(err, registry.ErrStopped) || errors.Is(err, registry.ErrClosed) {
					return
				}
				continue
			}
			r.mu.Lock()
			r.state = u
			r.mu.Unlock()
		}
	}()
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r.call(ctx, i)
		}
	}()
	return r, nil
}

// call sends one request to the next instance of the current state.
func (r *reader) call(ctx context.Context, i int) {
	r.mu.Lock()
	u := r.state
	r.mu.Unlock()
	if u == nil || len(u.Instances) == 0 {
		return
	}
	in := u.Instances[i%len(u.Instances)]
	var id []byte
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(in.Endpoints[0], "tcp://"))
	if err == nil {
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		id, err = io.ReadAll(c)
		c.Close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			r.failed++
			r.lastErr = err
		}
		return
	}
	r.calls[string(id)]++
}

// await waits until the reader reads ids from the tier source and its
// calls reach only those instances.
func (r *reader) await(ctx context.Context, source string, ids ...string) error {
	want := strings.Join(ids, " ")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		got, src := "", ""
		if r.state != nil {
			src = r.state.Source
			var s []string
			for _, in := range r.state.Instances {
				s = append(s, in.ID)
			}
			got = strings.Join(s, " ")
		}
		r.mu.Unlock()
		if got == want && src == source {
			// Start counting afresh, then let some calls go through.
			r.mu.Lock()
			r.switchF = r.failed
			r.calls, r.failed = map[string]int{}, 0
			r.mu.Unlock()
			return r.settle(ctx, len(ids))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reader in %s: want %s from %s, have %q from %q: %w", r.home, want, source, got, src, ctx.Err())
		case <-tick.C:
		}
	}
}

// settle waits until each of the n instances answered a few calls.
func (r *reader) settle(ctx context.Context, n int) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		ok := len(r.calls) >= n
		for _, c := range r.calls {
			ok = ok && c >= 5
		}
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reader in %s: calls did not settle: %w", r.home, ctx.Err())
		case <-tick.C:
		}
	}
}

// report describes the reader's view and the traffic since the last await.
func (r *reader) report() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids, zones []string
	for _, in := range r.state.Instances {
		ids = append(ids, in.ID)
		zones = append(zones, in.Metadata[locality.KeyZone])
	}
	var traffic []string
	for _, id := range ids {
		traffic = append(traffic, fmt.Sprintf("%s:%d", id, r.calls[id]))
	}
	origin := ""
	if len(r.state.Instances) > 0 {
		if o := mirror.Origin(r.state.Instances[0]); o != "" {
			origin = " (mirrored from " + o + ")"
		}
	}
	return fmt.Sprintf("calls %s%s, zones %s; read from %s, age %v; %d calls failed while switching",
		strings.Join(traffic, " "), origin, strings.Join(zones, ","), r.state.Source,
		time.Since(r.state.Time).Round(100*time.Millisecond), r.switchF)
}

func (r *reader) close() {
	if r.stop != nil {
		r.stop()
	}
	r.wg.Wait()
	if r.chain != nil {
		r.chain.Close()
	}
	for _, t := range r.tiers {
		t.Close()
	}
}
