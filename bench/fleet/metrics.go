package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counters is one reading of etcd's counters and of the process CPU time.
type counters struct {
	at   time.Time
	cpu  time.Duration
	msgs map[string]float64 // gRPC messages etcd received, by method
	// etcd's own counters: ranges, puts and txns served by its store, and
	// raft proposals committed.
	ranges, puts, txns, proposals float64
	// sent is the bytes etcd sent its gRPC clients.
	sent float64
}

// read gathers etcd's metrics from the default Prometheus registry, where
// the embedded etcd registers them (they survive its restarts).
func read() counters {
	c := counters{at: time.Now(), cpu: cpuTime(), msgs: map[string]float64{}}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		// A partial gather still carries the families it could read.
		warnf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			switch mf.GetName() {
			case "grpc_server_msg_received_total":
				method := ""
				for _, l := range m.GetLabel() {
					if l.GetName() == "grpc_method" {
						method = l.GetValue()
					}
				}
				c.msgs[method] += v
			case "etcd_mvcc_range_total":
				c.ranges += v
			case "etcd_network_client_grpc_sent_bytes_total":
				c.sent += v
			case "etcd_mvcc_put_total":
				c.puts += v
			case "etcd_mvcc_txn_total":
				c.txns += v
			case "etcd_server_proposals_committed_total":
				c.proposals += m.GetGauge().GetValue()
			}
		}
	}
	return c
}

func (c counters) total() float64 {
	t := 0.0
	for _, v := range c.msgs {
		t += v
	}
	return t
}

// rates is what happened between two readings, per second.
type rates struct {
	secs                          float64
	msgs                          map[string]float64
	total                         float64
	ranges, puts, txns, proposals float64
	sent                          float64 // bytes per second etcd sent its clients
	cpu                           float64 // CPU seconds per second
}

func between(a, b counters) rates {
	s := b.at.Sub(a.at).Seconds()
	r := rates{secs: s, msgs: map[string]float64{}}
	for k, v := range b.msgs {
		if d := v - a.msgs[k]; d > 0 {
			r.msgs[k] = d / s
			r.total += d / s
		}
	}
	r.ranges = (b.ranges - a.ranges) / s
	r.puts = (b.puts - a.puts) / s
	r.txns = (b.txns - a.txns) / s
	r.proposals = (b.proposals - a.proposals) / s
	r.sent = (b.sent - a.sent) / s
	r.cpu = (b.cpu - a.cpu).Seconds() / s
	return r
}

// methods returns the methods of r by rate, highest first.
func (r rates) methods() []string {
	var ms []string
	for k := range r.msgs {
		ms = append(ms, k)
	}
	slices.SortFunc(ms, func(a, b string) int {
		switch {
		case r.msgs[a] > r.msgs[b]:
			return -1
		case r.msgs[a] < r.msgs[b]:
			return 1
		}
		return 0
	})
	return ms
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heap is the heap in use and the goroutines, after a collection.
type heap struct {
	inuse      uint64
	goroutines int
}

func readHeap() heap {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return heap{inuse: ms.HeapInuse, goroutines: runtime.NumGoroutine()}
}

// quantile returns the q-quantile (0..1) of s by the nearest-rank method,
// 0 for an empty s.
func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	d := slices.Clone(s)
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	i = max(0, min(i, len(d)-1))
	return d[i]
}

// storm summarises the per-bucket request counts after a restart.
type storm struct {
	peak      float64       // highest bucket, requests per second
	peakAt    time.Duration // its start after the restart
	settledAt time.Duration // end of the last bucket above the threshold
	firstSec  float64       // requests in the first second
	total     float64       // requests over the window
}

// summarise reads buckets of width w; threshold is a rate (per second)
// above which a bucket counts as part of the storm.
func summarise(buckets []float64, w time.Duration, threshold float64) storm {
	var s storm
	perSec := float64(time.Second) / float64(w)
	for i, n := range buckets {
		r := n * perSec
		if r > s.peak {
			s.peak, s.peakAt = r, time.Duration(i)*w
		}
		if r > threshold {
			s.settledAt = time.Duration(i+1) * w
		}
		if time.Duration(i)*w < time.Second {
			s.firstSec += n
		}
		s.total += n
	}
	return s
}

// writeProfiles writes the heap profile (inuse after a GC) and the
// goroutine stacks of the whole process to dir, named after side.
func writeProfiles(dir, side string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	runtime.GC()
	for _, p := range []struct {
		name, file string
		debug      int
	}{{"heap", side + "-heap.pprof", 0}, {"goroutine", side + "-goroutines.txt", 1}} {
		f, err := os.Create(filepath.Join(dir, p.file))
		if err != nil {
			return err
		}
		err = pprof.Lookup(p.name).WriteTo(f, p.debug)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startCPUProfile starts the CPU profile of side's steady window when
// -profile is set; the function it returns stops it.
func startCPUProfile(side string) (stop func()) {
	if *profile == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(*profile, side+"-cpu.pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		warnf("%s: CPU profile: %v", side, err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
