// Command quickstart shows regchain's fallback chain at work with nothing
// installed: it starts an etcd server in-process, builds a chain of that
// etcd and a bbolt snapshot file, registers two instances of a service and
// watches it, stops etcd and keeps discovering from the snapshot (with its
// source and age), registers a third instance meanwhile, then starts etcd
// again and shows the registrations restored and the source back to etcd.
// Last it drains (the shutdown path: deregister everywhere and wait until
// etcd no longer shows the instances). It prints a timeline and exits by
// itself in a few seconds.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/regchain/regchain/adapters/etcd"
	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/chain"
	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/registry"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

const service = "greeter"

// timeline prints lines stamped with the time since the start.
type timeline struct {
	w     io.Writer
	start time.Time
}

func (t *timeline) printf(format string, args ...any) {
	fmt.Fprintf(t.w, "[%5.1fs] %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// updates reads a watcher in the background.
type updates struct {
	ch   chan *registry.Update
	done chan struct{}
}

func follow(w registry.Watcher) *updates {
	u := &updates{ch: make(chan *registry.Update, 64), done: make(chan struct{})}
	go func() {
		defer close(u.done)
		defer close(u.ch)
		for {
			up, err := w.Next()
			if errors.Is(err, registry.ErrStopped) { // Stop, ctx done or chain closed
				return
			}
			if err == nil {
				u.ch <- up
			}
		}
	}()
	return u
}

// until prints every update until one satisfies ok, or fails after d.
func (u *updates) until(tl *timeline, d time.Duration, what string, ok func(*registry.Update) bool) error {
	timeout := time.After(d)
	for {
		select {
		case up, open := <-u.ch:
			if !open {
				return fmt.Errorf("watcher ended while waiting for %s", what)
			}
			tl.printf("watch %s: %s", service, describe(up))
			if ok(up) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no %s within %v", what, d)
		}
	}
}

func describe(u *registry.Update) string {
	age := time.Since(u.Time).Round(100 * time.Millisecond)
	return fmt.Sprintf("%v from %s (confirmed %v ago)", idsOf(u.Instances), u.Source, age)
}

func idsOf(ins []*registry.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

func instance(id string, port int) *registry.Instance {
	return &registry.Instance{
		ID:        id,
		Name:      service,
		Version:   "v1.0.0",
		Metadata:  map[string]string{"zone": "local"},
		Endpoints: []string{fmt.Sprintf("grpc://127.0.0.1:%d", port)},
	}
}

func has(u *registry.Update, source string, ids ...string) bool {
	return u.Source == source && strings.Join(idsOf(u.Instances), ",") == strings.Join(ids, ",")
}

// run plays the scenario and writes its timeline to w.
func run(w io.Writer) (err error) {
	tl := &timeline{w: w, start: time.Now()}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "regchain-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv, err := embedetcd.Start(filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	tl.printf("etcd started on %s", srv.Endpoint())

	tier, err := etcd.New(etcd.Config{
		Endpoints:  []string{srv.Endpoint()},
		TTL:        5 * time.Second,
		Timeout:    time.Second,
		MaxBackoff: 300 * time.Millisecond,
		Logger:     quiet,
	})
	if err != nil {
		return err
	}
	store, err := file.OpenStore(filepath.Join(dir, "snapshot.db"), file.Config{Logger: quiet})
	if err != nil {
		tier.Close()
		return err
	}
	defer store.Close()
	c, err := chain.New([]chain.Tier{{Name: "etcd", Registry: tier}},
		chain.WithSnapshot(store),
		chain.WithOwnTiers(true),
		chain.WithProbeInterval(200*time.Millisecond),
		chain.WithProbeTimeout(500*time.Millisecond),
		chain.WithCallTimeout(time.Second),
		chain.WithLogger(quiet),
	)
	if err != nil {
		tier.Close()
		return err
	}
	defer func() {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}()
	tl.printf("chain built: etcd -> snapshot file %s", filepath.Base(store.Path()))

	for i, id := range []string{"g1", "g2"} {
		if err := c.Register(ctx, instance(id, 9000+i)); err != nil {
			return err
		}
	}
	tl.printf("registered %s/g1 and %s/g2", service, service)

	wt, err := c.Watch(ctx, service)
	if err != nil {
		return err
	}
	ups := follow(wt)
	defer func() { wt.Stop(); <-ups.done }()
	if err := ups.until(tl, 10*time.Second, "both instances from etcd", func(u *registry.Update) bool {
		return has(u, "etcd", "g1", "g2")
	}); err != nil {
		return err
	}

	tl.printf("stopping etcd ...")
	srv.Stop()
	tl.printf("etcd stopped")
	if err := ups.until(tl, 10*time.Second, "the snapshot taking over", func(u *registry.Update) bool {
		return has(u, chain.SnapshotSource, "g1", "g2")
	}); err != nil {
		return err
	}
	// Discovery keeps answering, from memory, while etcd is down; the age
	// of what it serves grows.
	tick := time.NewTicker(time.Second)
	for i := range 3 {
		if i > 0 {
			<-tick.C
		}
		got, err := c.GetService(ctx, service)
		if err != nil {
			tick.Stop()
			return fmt.Errorf("GetService with etcd down: %w", err)
		}
		ss := c.Status().Services[0]
		tl.printf("GetService(%s) with etcd down: %v (source %s, age %v)", service, idsOf(got), ss.Source, ss.Age.Round(100*time.Millisecond))
	}
	tick.Stop()

	if err := c.Register(ctx, instance("g3", 9002)); err != nil {
		return err
	}
	st := c.Status()
	tl.printf("registered %s/g3 with etcd down: returned at once, %d registration pending", service, st.PendingRegistrations)
	tl.printf("status: tier etcd up=%v, %s served from %s, snapshot age %v",
		st.Tiers[0].Up, service, st.Services[0].Source, st.Snapshot.ServedAge.Round(100*time.Millisecond))

	tl.printf("starting etcd again ...")
	if err := srv.Start(); err != nil {
		return err
	}
	tl.printf("etcd started")
	if err := ups.until(tl, 15*time.Second, "all three instances back from etcd", func(u *registry.Update) bool {
		return has(u, "etcd", "g1", "g2", "g3")
	}); err != nil {
		return err
	}
	in, err := tier.GetService(ctx, service)
	if err != nil {
		return fmt.Errorf("read etcd directly: %w", err)
	}
	// The watch shows g3 as soon as etcd holds it; the chain counts the
	// registration pending until its replay call has returned.
	st = waitStatus(c, 5*time.Second, func(st chain.Status) bool { return st.PendingRegistrations == 0 })
	tl.printf("etcd holds %v: registrations restored (%d pending); %s served from %s again",
		idsOf(in), st.PendingRegistrations, service, st.Services[0].Source)

	// Shutdown (what a SIGTERM handler does): deregister everywhere and
	// wait until etcd's watch no longer shows the instances, then stop.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Drain(dctx); err != nil {
		return err
	}
	in, err = tier.GetService(ctx, service)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("read etcd directly: %w", err)
	}
	tl.printf("drained in %v: etcd holds %v; safe to stop serving", time.Since(start).Round(time.Millisecond), idsOf(in))
	return nil
}

// waitStatus returns the chain's status once ok holds, or the last status
// after d.
func waitStatus(c *chain.Chain, d time.Duration, ok func(chain.Status) bool) chain.Status {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st := c.Status()
		if ok(st) || time.Now().After(deadline) {
			return st
		}
		<-tick.C
	}
}
