// Command multidc is a datacenter-failure drill with nothing to install:
// two "datacenters", each with its own etcd (in-process) and two instances
// of the service "orders", each instance serving gRPC, HTTP and go-micro.
// Mirrors (package mirror) keep each datacenter's records in the other's
// etcd, both ways. A reader in each datacenter reads through a chain over
// both etcds (its own first) and calls the service all along (two callers
// per client, 10ms between calls, 2s per call) with three clients: a gRPC client through grpcresolver (its default service
// config: the regchain_locality balancer and a retry policy), a Kratos
// HTTP client (kratosplugin.NewSelector and Retry) and a go-micro client
// (microservice.Nearest), each with the settings regchain's doors set by
// default. Every call of the drill is idempotent (it reads who answers).
//
// The drill kills one instance of dc-a hard while its record stays
// listed; kills dc-a whole (its etcd and its instances stop: connections
// reset) and brings it back; cuts dc-a off silently (its traffic held, no
// reset) and heals it; and wipes dc-b's etcd. After each step it prints,
// per reader and client kind, the calls that failed and how long after the
// fault all of the reader's traffic was where it should be. It exits by
// itself in well under a minute.
//
//	go run ./examples/multidc
//	go run ./examples/multidc -short   # the kill and the failback only
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/mirror"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func main() {
	short := flag.Bool("short", false, "run the kill of dc-a and its failback only")
	flag.Parse()
	slog.SetDefault(quiet) // the balancer's notes on levels and ejections
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *short); err != nil {
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

// drill is the running drill.
type drill struct {
	w       io.Writer
	start   time.Time
	a, b    *dc
	readers []*reader // dc-a's, dc-b's
}

func (d *drill) logf(format string, args ...any) {
	fmt.Fprintf(d.w, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, w io.Writer, short bool) error {
	var cl closers
	defer func() { cl.run() }() // cl grows below: evaluate it at return
	d := &drill{w: w, start: time.Now()}
	tmp, err := os.MkdirTemp("", "regchain-multidc-")
	if err != nil {
		return err
	}
	cl.add(func() { os.RemoveAll(tmp) })

	for _, name := range []string{"dc-a", "dc-b"} {
		site := &dc{name: name}
		if site.etcd, err = embedetcd.Start(tmp + "/" + name); err != nil {
			return err
		}
		cl.add(site.etcd.Stop)
		if name == "dc-a" {
			d.a = site
		} else {
			d.b = site
		}
	}
	who := map[string]string{} // gRPC address -> instance ID
	for _, site := range []*dc{d.a, d.b} {
		for i := 1; i <= 2; i++ {
			a, err := newApp(site, fmt.Sprintf("%s%d", site.name[3:], i))
			if err != nil {
				return err
			}
			site.apps = append(site.apps, a)
			who[a.addrs[linkGRPC]] = a.id
			cl.add(a.kill)
			if err := a.start(ctx); err != nil {
				return err
			}
		}
	}
	d.logf("two datacenters up: dc-a runs a1 a2, dc-b runs b1 b2 (each in its own etcd), every instance serving gRPC, HTTP and go-micro")

	// Mirrors, both ways.
	mctx, stopMirrors := context.WithCancel(context.Background())
	var mwg sync.WaitGroup
	cl.add(func() { stopMirrors(); mwg.Wait() })
	for _, pair := range [][2]*dc{{d.a, d.b}, {d.b, d.a}} {
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
		m, err := mirror.New(mirror.Config{Source: src, Target: dst, Origin: pair[0].name, TTL: ttl,
			StaleAfter: 2 * time.Second, MaxBackoff: 300 * time.Millisecond, Timeout: time.Second, Logger: quiet})
		if err != nil {
			return err
		}
		mwg.Add(1)
		go func() { defer mwg.Done(); m.Run(mctx) }()
	}

	for _, pair := range [][2]*dc{{d.a, d.b}, {d.b, d.a}} {
		r, err := newReader(pair[0], pair[1], who)
		if err != nil {
			return err
		}
		cl.add(r.close)
		d.readers = append(d.readers, r)
	}
	t0 := time.Now()
	if err := d.mirrored(ctx); err != nil {
		return err
	}
	if !d.settle(ctx, t0, d.home, 20*time.Second) {
		return fmt.Errorf("the readers' calls did not all reach their own datacenter: %s", d.state(t0, d.home))
	}
	d.logf("steady: each reader's gRPC, Kratos and go-micro calls answered in its own datacenter")

	if !short {
		if err := d.instanceKilled(ctx); err != nil {
			return err
		}
	}
	if err := d.datacenterKilled(ctx); err != nil {
		return err
	}
	if !short {
		if err := d.datacenterCut(ctx); err != nil {
			return err
		}
		if err := d.wipe(ctx); err != nil {
			return err
		}
	}
	d.logf("drill done")
	return nil
}

// mirrored waits until each reader's chain lists all four instances of
// both services: each etcd holds the other datacenter's records.
func (d *drill) mirrored(ctx context.Context) error {
	for {
		missing := ""
		for _, r := range d.readers {
			for _, svc := range []string{service, microService} {
				ins, err := r.chain.GetService(ctx, svc)
				if n := len(ins); err != nil || n < 4 {
					missing = fmt.Sprintf("reader in %s lists %d instances of %s (%v)", r.home, n, svc, err)
				}
			}
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the mirrors did not copy every record: %s", missing)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// want says, per reader, which instances should answer its calls.
type want func(r *reader) func(id string) bool

func (d *drill) home(r *reader) func(string) bool { return inDC(r.home) }

func inDC(name string) func(string) bool {
	return func(id string) bool { return id != "" && id[0] == name[3] }
}

func onDCB(*reader) func(string) bool { return inDC("dc-b") }

// settle waits until every reader's calls of every kind went where w says
// (the last 20 of them, all ended after t0, each instance there among
// them) and no call started before t0 is still running. It reports false
// when that took longer than limit.
func (d *drill) settle(ctx context.Context, t0 time.Time, w want, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		done := true
		for _, r := range d.readers {
			ok := w(r)
			for _, k := range kinds {
				outs, older := r.loads[k].since(t0)
				if older || len(outs) < 20 {
					done = false
					continue
				}
				seen := map[string]bool{}
				for _, o := range outs[len(outs)-20:] {
					done = done && o.err == nil && ok(o.id)
					seen[o.id] = true
				}
				// Every instance where calls should go answers again.
				for _, id := range d.ids() {
					done = done && (!ok(id) || seen[id])
				}
			}
		}
		if done {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ids returns the IDs of every instance, dead ones included.
func (d *drill) ids() []string {
	var out []string
	for _, site := range []*dc{d.a, d.b} {
		for _, a := range site.apps {
			out = append(out, a.id)
		}
	}
	return out
}

// state describes the last calls of each reader and kind, for errors.
func (d *drill) state(t0 time.Time, w want) string {
	var sb strings.Builder
	for _, r := range d.readers {
		for _, k := range kinds {
			outs, older := r.loads[k].since(t0)
			counts := map[string]int{}
			var lastErr error
			for _, o := range outs[max(0, len(outs)-20):] {
				if o.err != nil {
					counts["error"]++
					lastErr = o.err
				} else {
					counts[o.id]++
				}
			}
			fmt.Fprintf(&sb, "\n  reader in %s, %s: %d calls since, one from before still running: %v; the last 20: %v", r.home, k, len(outs), older, counts)
			if lastErr != nil {
				fmt.Fprintf(&sb, "; last error: %.200v", lastErr)
			}
		}
	}
	return sb.String()
}

// report prints, per reader and client kind, the calls that failed since
// t0, how long after t0 the last call ended that failed or was answered
// where w says no call should go (from then on every call was answered
// there), and the slowest call (one whose first attempts were given up or
// hung took that long). where names the place ("on dc-b"), after the
// fault ("the kill").
func (d *drill) report(t0 time.Time, w want, settled bool, where func(r *reader) string, after string) {
	for _, r := range d.readers {
		ok := w(r)
		for _, k := range kinds {
			outs, _ := r.loads[k].since(t0)
			failed := 0
			var last, slowest time.Duration
			var lastErr error
			for _, o := range outs {
				took := o.end.Sub(o.start)
				slowest = max(slowest, took)
				if o.err != nil {
					failed++
					lastErr = o.err
				}
				if o.err != nil || !ok(o.id) {
					last = max(last, o.end.Sub(t0))
				}
			}
			moved := fmt.Sprintf("all traffic %s %.2fs after %s", where(r), last.Seconds(), after)
			switch {
			case !settled:
				moved = fmt.Sprintf("traffic not all %s %.1fs after %s", where(r), time.Since(t0).Seconds(), after)
			case last == 0:
				moved = fmt.Sprintf("all traffic %s throughout", where(r))
			}
			line := fmt.Sprintf("    reader in %s, %-9s %3d failed calls, %s (slowest call %.2fs)", r.home, k+":", failed, moved, slowest.Seconds())
			if lastErr != nil {
				line += fmt.Sprintf("; last error: %.120s", lastErr)
			}
			fmt.Fprintln(d.w, line)
		}
	}
}

// instanceKilled kills a1 hard while its record stays listed: its servers
// stop, its registration lives on.
func (d *drill) instanceKilled(ctx context.Context) error {
	a1 := d.a.apps[0]
	d.logf("killing instance a1 hard (connections reset), its record still listed")
	t0 := time.Now()
	a1.stopServers()
	w := func(r *reader) func(string) bool {
		if r.home == "dc-a" {
			return func(id string) bool { return id == "a2" }
		}
		return inDC("dc-b")
	}
	settled := d.settle(ctx, t0, w, 20*time.Second)
	d.report(t0, w, settled, func(r *reader) string {
		if r.home == "dc-a" {
			return "on a2"
		}
		return "on dc-b"
	}, "the kill")
	// a1's process ends for good (its lease runs out) and a new one starts.
	a1.kill()
	return a1.start(ctx)
}

// outage takes dc-a down one way (fault, described by what), waits for
// the readers to move to dc-b, then brings it back (restore, described by
// back) and waits for the failback, reporting both.
func (d *drill) outage(ctx context.Context, what, after string, fault func(), back, backAfter string, restore func() error) error {
	d.logf("%s", what)
	t0 := time.Now()
	fault()
	settled := d.settle(ctx, t0, onDCB, 20*time.Second)
	d.report(t0, onDCB, settled, func(*reader) string { return "on dc-b" }, after)

	d.logf("%s", back)
	t0 = time.Now()
	if err := restore(); err != nil {
		return err
	}
	settled = d.settle(ctx, t0, d.home, 30*time.Second)
	d.report(t0, d.home, settled, d.backHome, backAfter)
	return nil
}

// datacenterKilled kills dc-a whole, then brings it back.
func (d *drill) datacenterKilled(ctx context.Context) error {
	return d.outage(ctx, "killing datacenter dc-a: its etcd and its instances a1 a2 stop (connections reset)", "the kill", d.a.kill,
		"bringing dc-a back: etcd, then a1 a2", "dc-a came back", func() error { return d.a.revive(ctx) })
}

// datacenterCut cuts dc-a off silently, then heals the cut.
func (d *drill) datacenterCut(ctx context.Context) error {
	return d.outage(ctx, "cutting datacenter dc-a off silently: traffic to its etcd and instances held, nothing reset", "the cut", d.a.cut,
		"healing the cut", "the cut healed", func() error { d.a.heal(); return nil })
}

func (d *drill) backHome(r *reader) string {
	if r.home == "dc-a" {
		return "back on dc-a"
	}
	return "on dc-b"
}

// wipe deletes every record in dc-b's etcd and watches dc-a's etcd for
// dc-b's records meanwhile: the B→A mirror must hold the drop.
func (d *drill) wipe(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{d.b.etcd.Endpoint()}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ra, err := d.a.registry()
	if err != nil {
		return err
	}
	defer ra.Close()
	count := func() int {
		n := 0
		for _, svc := range []string{service, microService} {
			ins, err := ra.GetService(ctx, svc)
			if err != nil {
				return -1
			}
			for _, in := range ins {
				if mirror.Origin(in) == "dc-b" {
					n++
				}
			}
		}
		return n
	}
	before := count()
	d.logf("wiping dc-b's etcd (every key deleted); dc-a's etcd holds %d records mirrored from dc-b", before)
	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = cli.Delete(wctx, "/", clientv3.WithPrefix())
	cancel()
	if err != nil {
		return err
	}
	lowest := before
	for time.Since(t0) < 3*time.Second {
		if n := count(); n >= 0 {
			lowest = min(lowest, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintf(d.w, "    dc-a's etcd: %d of dc-b's %d records lost over the 3s after the wipe\n", before-lowest, before)
	d.report(t0, d.home, true, func(r *reader) string { return "on " + r.home }, "the wipe")
	return nil
}
