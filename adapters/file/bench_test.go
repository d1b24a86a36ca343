package file

import (
	"context"
	"fmt"
	"os"
	"testing"
)

func BenchmarkGetService(b *testing.B) {
	r := mustOpen(b, tempPath(b, "reg.db"), quiet())
	defer r.Close()
	ctx := context.Background()
	for s := range 20 {
		for i := range 10 {
			name := fmt.Sprintf("svc%02d", s)
			if err := r.Register(ctx, inst(name, fmt.Sprintf("%s-%02d", name, i), s*10+i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		ins, err := r.GetService(ctx, "svc07")
		if err != nil || len(ins) != 10 {
			b.Fatalf("GetService = %d instances, %v", len(ins), err)
		}
	}
}

// The snapshot benchmarks use 1,000 services of 10 instances, each with two
// endpoints and three metadata keys.
const benchServices, benchInstances = 1000, 10

func benchSave(b *testing.B, noSync bool) {
	path := tempPath(b, "snap.db")
	s := mustOpenStore(b, path, quiet())
	defer s.Close()
	s.d.bolt.NoSync = noSync
	updates := fleet(benchServices, benchInstances)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SaveSnapshot(ctx, updates); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size()), "file-bytes")
	}
}

// BenchmarkSaveSnapshot saves the whole fleet in one fsync'ed transaction.
func BenchmarkSaveSnapshot(b *testing.B) { benchSave(b, false) }

// BenchmarkSaveSnapshotNoSync is the same without fsync, to show what
// durability costs (the Store always syncs).
func BenchmarkSaveSnapshotNoSync(b *testing.B) { benchSave(b, true) }

func saveFleet(b *testing.B) string {
	path := tempPath(b, "snap.db")
	s := mustOpenStore(b, path, quiet())
	if err := s.SaveSnapshot(context.Background(), fleet(benchServices, benchInstances)); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

func BenchmarkLoadSnapshot(b *testing.B) {
	s := mustOpenStore(b, saveFleet(b), quiet())
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		entries, err := s.LoadSnapshot(ctx)
		if err != nil || len(entries) != benchServices {
			b.Fatalf("LoadSnapshot = %d entries, %v", len(entries), err)
		}
	}
}

// BenchmarkOpenAndLoadSnapshot is a cold start: open (with the file check),
// load, close.
func BenchmarkOpenAndLoadSnapshot(b *testing.B) {
	path := saveFleet(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s := mustOpenStore(b, path, quiet())
		entries, err := s.LoadSnapshot(ctx)
		if err != nil || len(entries) != benchServices {
			b.Fatalf("LoadSnapshot = %d entries, %v", len(entries), err)
		}
		s.Close()
	}
}
