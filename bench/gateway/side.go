package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/logger"
	mreg "go-micro.dev/v4/registry"
	"go-micro.dev/v4/registry/cache"

	microetcd "github.com/go-micro/plugins/v4/registry/etcd"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// startEtcd runs etcd in a process of its own and returns its endpoint.
func startEtcd(tmp string) (*exec.Cmd, string) {
	cmd := exec.Command(os.Args[0], "-side", "etcd", "-dir", tmp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fail(err)
	}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		fail(fmt.Errorf("etcd's process: %w", err))
	}
	return cmd, strings.TrimSpace(line)
}

// serveEtcd is the etcd process: it prints the endpoint and serves until
// interrupted.
func serveEtcd(dir string) {
	srv, err := embedetcd.Start(dir)
	if err != nil {
		fail(err)
	}
	fmt.Println(srv.Endpoint())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt)
	<-ch
	srv.Stop()
}

// follower is one side: it follows every service until the first complete
// state is in, then records the latency of every change it sees once
// measuring.
type follower struct {
	measuring atomic.Bool
	mu        sync.Mutex
	latencies []int64
	seen      map[string]int64 // instance key: the last change time seen
}

// saw records an instance's change time t, once.
func (f *follower) saw(key string, t int64) {
	if t == 0 || !f.measuring.Load() {
		return
	}
	now := time.Now().UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[key] >= t {
		return
	}
	f.seen[key] = t
	f.latencies = append(f.latencies, now-t)
}

// runSide is a side's process: the first complete state, then "go" and
// "stop" on stdin bracket the changes.
func runSide(side, ep string) {
	out := json.NewEncoder(os.NewFile(3, "reports"))
	f := &follower{seen: make(map[string]int64)}
	start := time.Now()
	var err error
	switch side {
	case "regchain":
		err = followChain(ep, f)
	case "go-micro":
		err = followMicro(ep, f)
	default:
		err = fmt.Errorf("unknown side %q", side)
	}
	if err != nil {
		out.Encode(report{Err: err.Error()})
		os.Exit(1)
	}
	first := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if *profile != "" {
		if err := writeHeap(filepath.Join(*profile, side+".heap")); err != nil {
			out.Encode(report{Err: err.Error()})
			os.Exit(1)
		}
	}
	out.Encode(report{Phase: "ready", FirstState: first, Heap: ms.HeapAlloc, Stacks: ms.StackInuse, Goroutines: runtime.NumGoroutine()})

	in := bufio.NewScanner(os.Stdin)
	in.Scan() // "go"
	f.measuring.Store(true)
	cpu0, t0 := testutil.CPUTime(), time.Now()
	in.Scan() // "stop"
	cpu := (testutil.CPUTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	f.measuring.Store(false)
	f.mu.Lock()
	lat := f.latencies
	f.mu.Unlock()
	out.Encode(report{Phase: "done", CPU: cpu, Latencies: lat})
	os.Exit(0)
}

// followChain follows the namespace through a chain over regchain's etcd
// adapter with one Watch(""), as a gateway on regchain does.
func followChain(ep string, f *follower) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := etcd.New(etcd.Config{Endpoints: []string{ep}, Logger: quiet})
	if err != nil {
		return err
	}
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: r}},
		chain.WithLogger(quiet), chain.WithMaxServices(2**services))
	if err != nil {
		return err
	}
	w, err := c.Watch(context.Background(), "")
	if err != nil {
		return err
	}
	complete := make(chan struct{})
	go func() {
		counts := make(map[string]int, *services)
		full := 0
		for {
			u, err := w.Next()
			if errors.Is(err, registry.ErrStopped) {
				return
			}
			if err != nil {
				continue
			}
			if full < *services {
				was := counts[u.Service]
				counts[u.Service] = len(u.Instances)
				if was < *perSvc && len(u.Instances) >= *perSvc {
					if full++; full == *services {
						close(complete)
					}
				}
			}
			for _, in := range u.Instances {
				f.saw(u.Service+"/"+in.ID, unstamp(in.Metadata[metaT]))
			}
		}
	}()
	select {
	case <-complete:
		return nil
	case <-time.After(*deadline):
		return errors.New("no complete state")
	}
}

// followMicro follows the namespace the go-micro way: every service read
// into the registry cache (which then watches each one), and a watch of
// the whole registry for the changes.
func followMicro(ep string, f *follower) error {
	logger.DefaultLogger = logger.NewLogger(logger.WithOutput(io.Discard))
	reg := microetcd.NewRegistry(mreg.Addrs(ep))
	c := cache.New(reg)
	w, err := reg.Watch()
	if err != nil {
		return err
	}
	go func() {
		for {
			res, err := w.Next()
			if err != nil {
				return
			}
			for _, n := range res.Service.Nodes {
				f.saw(res.Service.Name+"/"+n.Id, unstamp(n.Metadata[metaT]))
			}
		}
	}()
	list, err := reg.ListServices()
	if err != nil {
		return err
	}
	if len(list) != *services {
		return fmt.Errorf("listed %d services, want %d", len(list), *services)
	}
	work := make(chan string)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for name := range work {
				svcs, err := c.GetService(name)
				if err == nil && (len(svcs) != 1 || len(svcs[0].Nodes) != *perSvc) {
					err = fmt.Errorf("%s: %d versions", name, len(svcs))
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, s := range list {
		work <- s.Name
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
