//go:build linux

package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/registry"
)

// TestZooKeeperEnsembleServerKills: a client configured with the three
// servers of an ensemble holds a registration and a watcher while each
// server in turn is killed and restarted (so the client's own server is
// killed at some point): the registration stays on the ensemble (the
// session moves before it expires) and the watcher sees changes made after
// each kill. Measured: how long the ensemble took to serve writes again,
// how long the record was absent, how long a change took to be watched.
func TestZooKeeperEnsembleServerKills(t *testing.T) {
	e := startEnsemble(t, 3)
	newZK := func() *zk.Registry {
		r, err := zk.New(zk.Config{Servers: e.addrs, SessionTimeout: 6 * time.Second, Namespace: "/ens",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	reg, obs := newZK(), newZK()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := reg.Register(ctx, instance("held", "z0")); err != nil {
		t.Fatal(err)
	}
	w, err := reg.Watch(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := follow(w)
	waitFor(t, "watcher sees z0", func() string { return seen.has("z0") })
	present := func() string {
		cctx, c := context.WithTimeout(ctx, 2*time.Second)
		defer c()
		ins, err := obs.GetService(cctx, "held")
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return err.Error()
		}
		for _, in := range ins {
			if in.ID == "z0" {
				return ""
			}
		}
		return "z0 absent"
	}
	want := []string{"z0"}
	for i := range 3 {
		e.kill(i)
		quorum := e.waitQuorum()
		id := fmt.Sprintf("k%d", i)
		start := time.Now()
		if err := reg.Register(ctx, instance("held", id)); err != nil {
			t.Fatalf("register after killing server %d: %v", i+1, err)
		}
		want = append(want, id)
		watched := waitFor(t, "watcher sees "+id, func() string { return seen.has(want...) })
		back := waitFor(t, "z0 on the ensemble", present)
		t.Logf("server %d killed: ensemble serving writes after %v; change watched %v after Register (%v incl. Register); z0 readable after %v more",
			i+1, quorum.Round(time.Millisecond), watched.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), back.Round(time.Millisecond))
		e.start(i)
		e.waitQuorum()
	}
}
