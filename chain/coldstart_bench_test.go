package chain_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/registry"
	"github.com/regchain/regchain/registry/registrytest"
)

// BenchmarkColdStart: chain.New plus the first GetService, every tier
// down, from a snapshot file of 10,000 instances (1,000 services of 10,
// two metadata keys and two endpoints each): a process restarted during
// an outage.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "snapshot.db")
	store, err := file.OpenStore(path, file.Config{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	var ups []*registry.Update
	for s := range 1000 {
		name := fmt.Sprintf("svc-%04d", s)
		u := &registry.Update{Service: name, Source: "m", Time: time.Now()}
		for i := range 10 {
			u.Instances = append(u.Instances, &registry.Instance{
				ID: fmt.Sprintf("i%02d", i), Name: name, Version: "v1",
				Metadata:  map[string]string{"zone": "z1", "weight": "10"},
				Endpoints: []string{fmt.Sprintf("grpc://10.%d.%d.%d:9000", s/250, s%250, i), fmt.Sprintf("http://10.%d.%d.%d:8000", s/250, s%250, i)},
			})
		}
		ups = append(ups, u)
	}
	if err := store.SaveSnapshot(ctx, ups); err != nil {
		b.Fatal(err)
	}
	m := registrytest.NewMemoryNamed("m")
	m.SetAvailable(false)
	b.Cleanup(func() { store.Close() })
	b.ReportAllocs()
	for b.Loop() {
		c, err := chain.New([]chain.Tier{{Name: "m", Registry: m}}, chain.WithSnapshot(store), chain.WithLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		if got, err := c.GetService(ctx, "svc-0500"); err != nil || len(got) != 10 {
			b.Fatalf("GetService = %d, %v", len(got), err)
		}
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
}
