// Command gateway measures one process that follows every service of a
// namespace, as an API gateway does: 10,000 services × 10 instances by
// default, in one etcd, followed through regchain (a chain over the etcd
// adapter, Watch("")) and through go-micro (its registry cache over its etcd
// plugin, every service read into the cache, and a watch of the whole
// registry), one side after the other in one run.
//
// Each side runs in a process of its own (this program started again with
// -side), so that its heap, goroutines and CPU time are its own; etcd runs
// in another one. Per side it reports the live heap (after a GC) and the
// goroutines once the first complete state is in, the time to that first
// complete state, the latency of a change reaching the side's watcher (p50,
// p99, max: an instance's metadata is rewritten with the time of the write,
// -rate changes a second for -window), and the side's CPU time per second
// while those changes flow.
//
//	cd bench && go run ./gateway                      # 10,000 × 10, about 3 minutes
//	cd bench && go run ./gateway -services 1000 -window 5s
//
// The program exits by itself: every wait is bounded and a watchdog ends it
// (exit status 2) once -deadline has passed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var (
	services = flag.Int("services", 10000, "services in the namespace")
	perSvc   = flag.Int("instances", 10, "instances per service")
	rate     = flag.Int("rate", 100, "changes per second while the CPU and the latencies are measured")
	window   = flag.Duration("window", 10*time.Second, "how long the changes flow")
	sides    = flag.String("sides", "regchain,go-micro", "sides to run, in order")
	deadline = flag.Duration("deadline", 10*time.Minute, "the program exits (status 2) if still running after this")
	profile  = flag.String("profile", "", "a directory: each side writes its heap profile there (SIDE.heap) once its first complete state is in")

	// Set when this program runs as a child.
	child    = flag.String("side", "", "internal: run one side (regchain, go-micro) or etcd")
	endpoint = flag.String("endpoint", "", "internal: the etcd endpoint a side follows")
	dir      = flag.String("dir", "", "internal: etcd's data directory")
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gateway:", err)
	os.Exit(1)
}

func main() {
	flag.Parse()
	time.AfterFunc(*deadline, func() {
		fmt.Fprintf(os.Stderr, "gateway: still running after -deadline %v: giving up\n", *deadline)
		os.Exit(2)
	})
	switch *child {
	case "":
		coordinate()
	case "etcd":
		serveEtcd(*dir)
	default:
		runSide(*child, *endpoint)
	}
}

// report is what a side's process writes on its stdout, one JSON line per
// phase.
type report struct {
	Phase      string        `json:"phase"` // "ready", then "done"
	FirstState time.Duration `json:"first_state"`
	Heap       uint64        `json:"heap"`
	Stacks     uint64        `json:"stacks"` // goroutine stacks in use
	Goroutines int           `json:"goroutines"`
	CPU        float64       `json:"cpu"` // seconds per second over the window
	Latencies  []int64       `json:"latencies,omitempty"`
	Err        string        `json:"err,omitempty"`
}

type result struct {
	side  string
	ready report
	done  report
}

// coordinate starts etcd, fills both namespaces, and runs each side.
func coordinate() {
	tmp, err := os.MkdirTemp("", "regchain-gateway-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	etcdProc, ep := startEtcd(tmp)
	defer func() {
		etcdProc.Process.Signal(os.Interrupt)
		etcdProc.Wait()
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fail(err)
	}
	defer cli.Close()
	start := time.Now()
	for _, l := range layouts {
		if err := fill(cli, l); err != nil {
			fail(err)
		}
	}
	fmt.Fprintf(os.Stderr, "gateway: %d services × %d instances written in each layout in %v\n", *services, *perSvc, time.Since(start).Round(time.Millisecond))

	var results []result
	for _, side := range strings.Split(*sides, ",") {
		l, ok := layoutOf[side]
		if !ok {
			fail(fmt.Errorf("unknown side %q", side))
		}
		res, err := runOne(side, ep, cli, l)
		if err != nil {
			fail(fmt.Errorf("%s: %w", side, err))
		}
		results = append(results, res)
	}
	print(results)
}

// runOne starts one side's process, waits for its first complete state,
// makes the changes and collects its report.
func runOne(side, ep string, cli *clientv3.Client, l layout) (result, error) {
	cmd := exec.Command(os.Args[0], "-side", side, "-endpoint", ep,
		"-services", fmt.Sprint(*services), "-instances", fmt.Sprint(*perSvc), "-profile", *profile)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return result{}, err
	}
	// Reports come on file descriptor 3: a library may write to stdout.
	out, w, err := os.Pipe()
	if err != nil {
		return result{}, err
	}
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return result{}, err
	}
	defer cmd.Wait()
	defer in.Close()
	defer out.Close()
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 1<<20), 64<<20)
	read := func() (report, error) {
		if !lines.Scan() {
			return report{}, fmt.Errorf("the side's process ended: %v", lines.Err())
		}
		var r report
		if err := json.Unmarshal(lines.Bytes(), &r); err != nil {
			return report{}, err
		}
		if r.Err != "" {
			return r, fmt.Errorf("%s", r.Err)
		}
		return r, nil
	}
	res := result{side: side}
	if res.ready, err = read(); err != nil {
		return res, err
	}
	fmt.Fprintf(os.Stderr, "gateway: %s: first complete state after %v\n", side, res.ready.FirstState.Round(time.Millisecond))
	if _, err := io.WriteString(in, "go\n"); err != nil {
		return res, err
	}
	if err := change(cli, l); err != nil {
		return res, err
	}
	if _, err := io.WriteString(in, "stop\n"); err != nil {
		return res, err
	}
	if res.done, err = read(); err != nil {
		return res, err
	}
	return res, nil
}

// change rewrites one random instance's metadata -rate times a second for
// -window, each time with the time of the write.
func change(cli *clientv3.Client, l layout) error {
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	end := time.Now().Add(*window)
	for time.Now().Before(end) {
		<-tick.C
		s, i := rand.IntN(*services), rand.IntN(*perSvc)
		key, val := l.record(s, i, time.Now().UnixNano())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.Put(ctx, key, val)
		cancel()
		if err != nil {
			return err
		}
	}
	// Let the last changes arrive.
	time.Sleep(time.Second)
	return nil
}

func print(results []result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "side\tfirst complete state\theap\tstacks\tgoroutines\tchange latency p50\tp99\tmax\tchanges seen\tCPU (s/s) at %d changes/s\t\n", *rate)
	for _, r := range results {
		p50, p99, mx := percentiles(r.done.Latencies)
		fmt.Fprintf(w, "%s\t%v\t%.1f MiB\t%.1f MiB\t%d\t%v\t%v\t%v\t%d\t%.3f\t\n", r.side,
			r.ready.FirstState.Round(time.Millisecond), float64(r.ready.Heap)/(1<<20), float64(r.ready.Stacks)/(1<<20), r.ready.Goroutines,
			p50, p99, mx, len(r.done.Latencies), r.done.CPU)
	}
	w.Flush()
	fmt.Printf("%d services × %d instances; heap: live heap after a GC once the first complete state is in; latency: from the etcd write to the side's watcher\n", *services, *perSvc)
}

func percentiles(ns []int64) (p50, p99, max time.Duration) {
	if len(ns) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	at := func(q float64) time.Duration {
		return time.Duration(ns[min(len(ns)-1, int(q*float64(len(ns))))]).Round(10 * time.Microsecond)
	}
	return at(0.50), at(0.99), time.Duration(ns[len(ns)-1]).Round(10 * time.Microsecond)
}
