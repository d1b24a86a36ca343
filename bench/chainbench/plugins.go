package main

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go-micro.dev/v4/registry/cache"

	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/kratosplugin"
	"github.com/regchain/regchain/microplugin"
	"github.com/regchain/regchain/registry/registrytest"
)

// pluginReads reads one service of 10 instances (metadata, two endpoints)
// through microplugin and kratosplugin over a chain, and through go-micro's
// registry/cache over microplugin over the same chain, alternating the
// three so that all see the same machine load.
func pluginReads() {
	ctx := context.Background()
	m := registrytest.NewMemoryNamed("m")
	for i := range 10 {
		check(m.Register(ctx, instance("svc", i)))
	}
	c, err := chain.New([]chain.Tier{{Name: "m", Registry: m}}, chain.WithLogger(quiet), chain.WithOwnTiers(true))
	check(err)
	defer c.Close()
	_, err = c.GetService(ctx, "svc")
	check(err)
	mp := microplugin.New(c)
	kp := kratosplugin.New(c)
	mc := cache.New(mp)
	defer mc.Stop()
	_, err = mc.GetService("svc")
	check(err)
	type variant struct {
		name string
		f    func() error
		ns   []float64
		r    testing.BenchmarkResult
	}
	vs := []*variant{
		{name: "go-micro registry/cache GetService", f: func() error { _, err := mc.GetService("svc"); return err }},
		{name: "microplugin GetService", f: func() error { _, err := mp.GetService("svc"); return err }},
		{name: "kratosplugin GetService", f: func() error { _, err := kp.GetService(ctx, "svc"); return err }},
	}
	rounds := 5
	if *quick {
		rounds = 3
	}
	for range rounds {
		for _, v := range vs {
			v.r = testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := v.f(); err != nil {
						b.Fatal(err)
					}
				}
			})
			v.ns = append(v.ns, float64(v.r.T.Nanoseconds())/float64(v.r.N))
		}
	}
	base := median(vs[0].ns)
	for i, v := range vs {
		ns := median(v.ns)
		target, ok := "", true
		if i > 0 {
			target = "<= go-micro cache"
			ok = ns <= base
		}
		record(fmt.Sprintf("%s, 10 instances (median of %d)", v.name, rounds),
			fmt.Sprintf("%.0fns/op, %d allocs/op, %d B/op", ns, v.r.AllocsPerOp(), v.r.AllocedBytesPerOp()), target, ok)
	}
}

func median(s []float64) float64 {
	d := slices.Clone(s)
	slices.Sort(d)
	return d[len(d)/2]
}
