package consul

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/regchain/regchain/internal/harness/faultproxy"
	"github.com/regchain/regchain/internal/testsupport/consultest"
	"github.com/regchain/regchain/registry"
)

// BenchmarkOutage cuts a registry (TTL 2 s, heartbeat every 667 ms) off its
// agent for 6 s or 20 s; each iteration is one outage. Two kinds:
//
//   - agent-restart: the agent is killed and started again on the same
//     ports. A dev agent keeps nothing: the registration must be made again.
//   - unreachable: the agent runs on but refuses the registry's connections
//     (a proxy in between refuses and severs them). The agent keeps the
//     service; its TTL check turns critical during the outage (that is what
//     a TTL is for), and must pass again once the agent is reachable.
//
// It reports, from the moment the agent is ready (restart) or reachable
// again (unreachable), how long until another client sees the instance
// passing ("ms-back"). Run with -benchtime=5x.
func BenchmarkOutage(b *testing.B) {
	for _, kind := range []string{"agent-restart", "unreachable"} {
		for _, outage := range []time.Duration{6 * time.Second, 20 * time.Second} {
			b.Run(kind+"/"+outage.String(), func(b *testing.B) { benchOutage(b, kind, outage) })
		}
	}
}

func benchOutage(b *testing.B, kind string, outage time.Duration) {
	a := consultest.Start(b, consultest.Options{})
	p, err := faultproxy.Start(a.Addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	cfg := Config{Address: p.Addr(), TTL: testTTL, WaitTime: testWaitTime, Timeout: 2 * time.Second, Logger: quietLogger()}
	r, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	observer, err := New(Config{Address: a.Addr, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { observer.Close() })
	in := instance("outage", "o1", 7800)
	if err := r.Register(ctxB(b, 10*time.Second), in); err != nil {
		b.Fatal(err)
	}
	passing := func() bool {
		got, err := observer.GetService(ctxB(b, 2*time.Second), in.Name)
		return err == nil && registry.EqualInstances(got, []*registry.Instance{in})
	}
	var backs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if kind == "agent-restart" {
			a.Stop()
		} else {
			p.Refuse(true)
			p.Sever()
		}
		time.Sleep(outage) // the outage itself
		if kind == "agent-restart" {
			a.Resume(b)
		} else {
			p.Refuse(false)
		}
		up := time.Now()
		for !passing() {
			if time.Since(up) > 30*time.Second {
				b.Fatalf("outage %d: instance not passing within 30 s", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		back := time.Since(up)
		backs = append(backs, back)
		b.Logf("%s %v #%d: passing again %v after the agent was back", kind, outage, i+1, back.Round(time.Millisecond))
	}
	b.StopTimer()
	s := slices.Clone(backs)
	slices.Sort(s)
	b.ReportMetric(float64(s[len(s)/2].Microseconds())/1000, "ms-back-median")
	b.ReportMetric(float64(s[len(s)-1].Microseconds())/1000, "ms-back-max")
	b.Logf("ms-back: %v", fmt.Sprint(backs))
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func ctxB(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
