package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/embedetcd"
)

var (
	n        = flag.Int("n", 200, "members (processes' worth of registries) per side")
	ttl      = flag.Duration("ttl", 15*time.Second, "registration lease TTL, both sides (Kratos' contrib default)")
	settle   = flag.Duration("settle", 5*time.Second, "wait after every member is registered, before measuring")
	steady   = flag.Duration("steady", 20*time.Second, "steady-state measurement window")
	outage   = flag.Duration("outage", 20*time.Second, "how long etcd is down")
	recovery = flag.Duration("recover", 15*time.Second, "window observed after etcd is back")
	bucket   = flag.Duration("bucket", 100*time.Millisecond, "width of a request-rate bucket after the restart")
	sides    = flag.String("sides", "regchain,kratos-contrib", "sides to run, in order")
	deadline = flag.Duration("deadline", 175*time.Second, "the program exits (status 2) if still running after this")
	verbose  = flag.Bool("v", false, "per-bucket request counts after the restart")
	maxDelay = flag.Duration("grpc-max-backoff", 0, "every member's gRPC connection backoff cap (grpc.WithConnectParams, base 100ms); 0 keeps gRPC's default (1s base, 120s cap)")
	probe    = flag.Duration("probe", 0, "regchain: the chain's probe interval (chain.WithProbeInterval); 0 keeps the chain's default")
	extra    = flag.Int("extra", 0, "records of other services put in each side's namespace before its members start (a namespace shared with other teams)")
	profile  = flag.String("profile", "", "a directory: write each side's heap profile and goroutine stacks there once the fleet has settled, and its CPU profile of the steady window")

	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func warnf(format string, args ...any) { fmt.Fprintf(os.Stderr, "fleet: "+format+"\n", args...) }

func fail(err error) {
	warnf("%v", err)
	os.Exit(1)
}

// result is one side's measurements.
type result struct {
	name      string
	startup   time.Duration
	steady    rates
	heapPerM  float64 // bytes per member
	startSent float64 // bytes etcd sent from the first member's start to the end of settle
	goroPerM  float64
	outage    rates
	// client calls (unary calls and stream messages sent) per second, summed
	// over the members, at steady state and while etcd is down
	steadyCalls, outageCalls float64
	storm                    storm
	recovCPU                 float64 // CPU seconds per second over the recovery window
	recov                    rates   // etcd's requests over the recovery window
	heapAfter, goroAfter     float64 // per member, after the recovery window
	buckets                  []float64
	firstOK                  []time.Duration // per member, after the restart
	neverOK                  int
	putsAfter                int // registration keys written during the recovery window
	delsAfter                int // and deleted
	minKeys                  int // fewest keys present during the recovery window
	endKeys                  int
	lastPut                  time.Duration
}

func main() {
	flag.Parse()
	time.AfterFunc(*deadline, func() {
		warnf("still running after -deadline %v: giving up", *deadline)
		os.Exit(2)
	})
	dir, err := os.MkdirTemp("", "fleet-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	srv, err := embedetcd.Start(dir)
	if err != nil {
		fail(err)
	}
	defer srv.Stop()
	obs, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fail(err)
	}
	defer obs.Close()
	warnf("%s, %d CPUs, n=%d, ttl=%v, steady=%v, outage=%v, recover=%v, probe=%v, grpc-max-backoff=%v", runtime.Version(), runtime.NumCPU(), *n, *ttl, *steady, *outage, *recovery, *probe, *maxDelay)
	var results []result
	for _, name := range strings.Split(*sides, ",") {
		var k *kind
		for i := range kinds {
			if kinds[i].name == name {
				k = &kinds[i]
			}
		}
		if k == nil {
			fail(fmt.Errorf("unknown side %q", name))
		}
		r, err := run(*k, srv, obs)
		if err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
		results = append(results, r)
	}
	report(results)
}

// run measures one side: start, steady state, outage, recovery, stop.
func run(k kind, srv *embedetcd.Server, obs *clientv3.Client) (result, error) {
	r := result{name: k.name}
	ns := "/fleet-" + k.name
	warnf("%s: starting %d members", k.name, *n)
	if err := putExtra(obs, ns, *extra); err != nil {
		return r, err
	}
	base := readHeap()
	startC := read()
	t0 := time.Now()
	members, err := startAll(k, srv.Endpoint(), ns)
	defer func() {
		stopAll(members)
		// The members stopped as if they crashed: revoke their leases now,
		// so that the expiries do not land in the next side's windows.
		if err := revokeAll(obs, ns); err != nil {
			warnf("%s: revoke leases: %v", k.name, err)
		}
	}()
	if err != nil {
		return r, err
	}
	if err := waitKeys(obs, ns, *n, time.Minute); err != nil {
		return r, err
	}
	r.startup = time.Since(t0)
	time.Sleep(*settle)
	r.startSent = read().sent - startC.sent
	h := readHeap()
	r.heapPerM = (float64(h.inuse) - float64(base.inuse)) / float64(*n)
	r.goroPerM = float64(h.goroutines-base.goroutines) / float64(*n)
	if *profile != "" {
		if err := writeProfiles(*profile, k.name); err != nil {
			warnf("%s: profiles: %v", k.name, err)
		}
	}

	warnf("%s: steady state for %v", k.name, *steady)
	stopCPU := startCPUProfile(k.name)
	a, ca := read(), calls(members)
	time.Sleep(*steady)
	b, cb := read(), calls(members)
	stopCPU()
	r.steady = between(a, b)
	r.steadyCalls = float64(cb-ca) / r.steady.secs

	ev, err := observe(obs, ns)
	if err != nil {
		return r, err
	}
	defer ev.stop()

	warnf("%s: etcd down for %v", k.name, *outage)
	a, ca = read(), calls(members)
	srv.Stop()
	time.Sleep(*outage)
	b, cb = read(), calls(members)
	r.outage = between(a, b)
	r.outageCalls = float64(cb-ca) / r.outage.secs
	mark := time.Now().UnixNano()
	for _, m := range members {
		m.tap.firstOK.Store(0)
		m.tap.mark.Store(mark)
	}
	if err := srv.Start(); err != nil {
		return r, fmt.Errorf("restart etcd: %w", err)
	}
	restart := time.Now()
	warnf("%s: etcd back, watching the recovery for %v", k.name, *recovery)
	first := read()
	prev := first.total()
	r.minKeys = *n * 10
	tick := time.NewTicker(*bucket)
	for time.Since(restart) < *recovery {
		<-tick.C
		cur := read().total()
		r.buckets = append(r.buckets, cur-prev)
		prev = cur
		r.minKeys = min(r.minKeys, ev.present())
	}
	tick.Stop()
	r.recov = between(first, read())
	r.recovCPU = r.recov.cpu
	h = readHeap()
	r.heapAfter = (float64(h.inuse) - float64(base.inuse)) / float64(*n)
	r.goroAfter = float64(h.goroutines-base.goroutines) / float64(*n)
	steadyPerSec := r.steady.total
	r.storm = summarise(r.buckets, *bucket, 2*steadyPerSec)
	for _, m := range members {
		if ok := m.tap.firstOK.Load(); ok != 0 {
			r.firstOK = append(r.firstOK, time.Duration(ok-restart.UnixNano()))
		} else {
			r.neverOK++
		}
	}
	r.putsAfter, r.delsAfter, r.lastPut = ev.since(restart)
	r.endKeys = ev.present()
	return r, nil
}

// putExtra puts n records of services no member watches under ns, in
// the JSON both sides read, as other teams' services sharing a namespace.
func putExtra(cli *clientv3.Client, ns string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const batch = 100 // below etcd's default of 128 operations per txn
	for i := 0; i < n; i += batch {
		var ops []clientv3.Op
		for j := i; j < min(i+batch, n); j++ {
			name, id := fmt.Sprintf("other-%d", j%500), fmt.Sprintf("other-%05d", j)
			v := fmt.Sprintf(`{"id":%q,"name":%q,"version":"v1","metadata":{"weight":"10"},"endpoints":["grpc://10.2.%d.%d:9000"]}`, id, name, j/250, j%250)
			ops = append(ops, clientv3.OpPut(ns+"/"+name+"/"+id, v))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("put extra records: %w", err)
		}
	}
	return nil
}

// startAll starts the members, a few at a time, as a fleet rolls out.
func startAll(k kind, endpoint, ns string) ([]*member, error) {
	members := make([]*member, *n)
	errs := make([]error, *n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			members[i], errs[i] = start(k, endpoint, ns, i)
		}()
	}
	wg.Wait()
	var out []*member
	var first error
	for i, m := range members {
		if m != nil {
			out = append(out, m)
		} else if first == nil {
			first = fmt.Errorf("member %d: %w", i, errs[i])
		}
	}
	return out, first
}

// calls sums the members' client calls so far.
func calls(members []*member) int64 {
	var t int64
	for _, m := range members {
		t += m.tap.calls.Load()
	}
	return t
}

func stopAll(members []*member) {
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() { defer wg.Done(); m.stop() }()
	}
	wg.Wait()
}

// revokeAll revokes the leases of the keys under ns.
func revokeAll(obs *clientv3.Client, ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := obs.Get(ctx, ns+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	seen := map[clientv3.LeaseID]bool{}
	for _, kv := range resp.Kvs {
		id := clientv3.LeaseID(kv.Lease)
		if id == clientv3.NoLease || seen[id] {
			continue
		}
		seen[id] = true
		if _, err := obs.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
	}
	_, err = obs.Delete(ctx, ns+"/", clientv3.WithPrefix())
	return err
}

// waitKeys waits until the namespace holds want keys.
func waitKeys(obs *clientv3.Client, ns string, want int, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := obs.Get(ctx, ns+"/svc-", clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err == nil && resp.Count >= int64(want) {
			return nil
		}
		if time.Now().After(end) {
			got := int64(-1)
			if resp != nil {
				got = resp.Count
			}
			return fmt.Errorf("%d keys under %s after %v, want %d (last error: %v)", got, ns, limit, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// events follows the registration keys through an outage with one watch.
type events struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex // guards the fields below
	keys map[string]bool
	log  []event
}

type event struct {
	at  time.Time
	put bool
}

func observe(obs *clientv3.Client, ns string) (*events, error) {
	ctx, cancel := context.WithCancel(context.Background())
	gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := obs.Get(gctx, ns+"/svc-", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	gcancel()
	if err != nil {
		cancel()
		return nil, err
	}
	e := &events{cancel: cancel, done: make(chan struct{}), keys: map[string]bool{}}
	for _, kv := range resp.Kvs {
		e.keys[string(kv.Key)] = true
	}
	wch := obs.Watch(ctx, ns+"/svc-", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		defer close(e.done)
		for wr := range wch {
			now := time.Now()
			e.mu.Lock()
			for _, ev := range wr.Events {
				put := ev.Type == clientv3.EventTypePut
				if put {
					e.keys[string(ev.Kv.Key)] = true
				} else {
					delete(e.keys, string(ev.Kv.Key))
				}
				e.log = append(e.log, event{now, put})
			}
			e.mu.Unlock()
		}
	}()
	return e, nil
}

func (e *events) present() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.keys)
}

// since counts the puts and deletes from t on, and when the last put came.
func (e *events) since(t time.Time) (puts, dels int, lastPut time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.log {
		if ev.at.Before(t) {
			continue
		}
		if ev.put {
			puts++
			lastPut = ev.at.Sub(t)
		} else {
			dels++
		}
	}
	return puts, dels, lastPut
}

func (e *events) stop() {
	e.cancel()
	<-e.done
}

func report(results []result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(what string, f func(r result) string) {
		fmt.Fprintf(tw, "%s\t", what)
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t", f(r))
		}
		fmt.Fprintln(tw)
	}
	row(fmt.Sprintf("n=%d, ttl=%v", *n, *ttl), func(r result) string { return r.name })
	row("startup (all registered)", func(r result) string { return r.startup.Round(time.Millisecond).String() })
	row("steady: etcd requests/s", func(r result) string { return fmt.Sprintf("%.1f", r.steady.total) })
	for _, m := range methods(results) {
		row("  "+m+"/s", func(r result) string { return fmt.Sprintf("%.1f", r.steady.msgs[m]) })
	}
	row("steady: members' client calls/s", func(r result) string { return fmt.Sprintf("%.1f", r.steadyCalls) })
	row("steady: mvcc ranges/s", func(r result) string { return fmt.Sprintf("%.1f", r.steady.ranges) })
	row("steady: mvcc puts+txns/s", func(r result) string { return fmt.Sprintf("%.1f", r.steady.puts+r.steady.txns) })
	row("startup: bytes etcd sent", func(r result) string { return fmt.Sprintf("%.0f KiB", r.startSent/1024) })
	row("steady: raft proposals/s", func(r result) string { return fmt.Sprintf("%.1f", r.steady.proposals) })
	row("steady: process CPU (etcd+members)", func(r result) string { return fmt.Sprintf("%.1f%%", 100*r.steady.cpu) })
	row("heap per member", func(r result) string { return fmt.Sprintf("%.0f KiB", r.heapPerM/1024) })
	row("goroutines per member", func(r result) string { return fmt.Sprintf("%.1f", r.goroPerM) })
	row("outage: process CPU (members only)", func(r result) string { return fmt.Sprintf("%.1f%%", 100*r.outage.cpu) })
	row("outage: members' client calls/s", func(r result) string { return fmt.Sprintf("%.1f", r.outageCalls) })
	row("recovery: peak requests/s (bucket)", func(r result) string {
		return fmt.Sprintf("%.0f at +%v", r.storm.peak, r.storm.peakAt)
	})
	row("recovery: requests in 1st second", func(r result) string { return fmt.Sprintf("%.0f", r.storm.firstSec) })
	row("recovery: requests in window", func(r result) string { return fmt.Sprintf("%.0f", r.storm.total) })
	row("recovery: bytes etcd sent", func(r result) string { return fmt.Sprintf("%.0f KiB", r.recov.sent*r.recov.secs/1024) })
	for _, m := range recoveryMethods(results) {
		row("  "+m, func(r result) string { return fmt.Sprintf("%.0f", r.recov.msgs[m]*r.recov.secs) })
	}
	row("recovery: > 2x steady until", func(r result) string { return "+" + r.storm.settledAt.String() })
	row("recovery: process CPU (etcd+members)", func(r result) string { return fmt.Sprintf("%.1f%%", 100*r.recovCPU) })
	row("after recovery: heap per member", func(r result) string { return fmt.Sprintf("%.0f KiB", r.heapAfter/1024) })
	row("after recovery: goroutines per member", func(r result) string { return fmt.Sprintf("%.1f", r.goroAfter) })
	row("recovery: members' first OK p10", func(r result) string { return "+" + quantile(r.firstOK, 0.1).Round(time.Millisecond).String() })
	row("recovery: members' first OK p50", func(r result) string { return "+" + quantile(r.firstOK, 0.5).Round(time.Millisecond).String() })
	row("recovery: members' first OK p90", func(r result) string { return "+" + quantile(r.firstOK, 0.9).Round(time.Millisecond).String() })
	row("recovery: members' first OK max", func(r result) string { return "+" + quantile(r.firstOK, 1).Round(time.Millisecond).String() })
	row("recovery: members with no OK", func(r result) string { return fmt.Sprint(r.neverOK) })
	row("recovery: keys put / deleted", func(r result) string { return fmt.Sprintf("%d / %d", r.putsAfter, r.delsAfter) })
	row("recovery: last put", func(r result) string {
		if r.putsAfter == 0 {
			return "-"
		}
		return "+" + r.lastPut.Round(time.Millisecond).String()
	})
	row("recovery: fewest keys present", func(r result) string { return fmt.Sprint(r.minKeys) })
	row("recovery: keys present at end", func(r result) string { return fmt.Sprint(r.endKeys) })
	tw.Flush()
	if *verbose {
		for _, r := range results {
			fmt.Printf("%s requests per %v bucket after the restart: %v\n", r.name, *bucket, r.buckets)
		}
	}
}

// recoveryMethods returns the methods etcd received in any side's recovery
// window, by name.
func recoveryMethods(results []result) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range results {
		for m, v := range r.recov.msgs {
			if !seen[m] && v*r.recov.secs >= 0.5 {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out
}

func methods(results []result) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range results {
		for _, m := range r.steady.methods() {
			if !seen[m] && r.steady.msgs[m] >= 0.05 {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out
}
