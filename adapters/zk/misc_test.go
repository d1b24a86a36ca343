package zk_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/regchain/regchain/adapters/zk"
	"github.com/regchain/regchain/internal/testsupport/testutil"
	"github.com/regchain/regchain/registry"
)

// Nodes whose data is not an instance of their service are skipped and
// logged, by reads and watchers alike; when fixed they show up.
func TestMalformedNodesSkipped(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	rec := &recorder{}
	r := newRegistry(t, nil, zk.Config{Namespace: root, Logger: slogNew(rec)})
	good := instance("mixed", "good", 7700)
	register(t, r, good)
	o := srv.Connect(t, 2*time.Second)
	svc := root + "/mixed"
	other := instance("other-service", "stray", 7710)
	strayData, _ := registry.Marshal(other)
	bad := map[string]string{
		"garbage": "not json",
		"empty":   "",
		"array":   "[1,2,3]",
		"stray":   string(strayData), // valid JSON naming another service
		"noeps":   `{"id":"noeps","name":"mixed","version":"v1","metadata":null,"endpoints":[]}`,
	}
	for id, data := range bad {
		if _, err := o.Create(svc+"/"+id, []byte(data), gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.GetService(ctxT(t, 10*time.Second), "mixed")
	if err != nil || !registry.EqualInstances(got, []*registry.Instance{good}) {
		t.Fatalf("GetService = %v, %v; want only [%v]", got, err, good)
	}
	w, err := r.Watch(ctxT(t, time.Minute), "mixed")
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	n.until(recoveryTimeout, "mixed", good)
	if !rec.find("malformed instance node") || !rec.find(svc+"/garbage") {
		t.Errorf("no log line about the malformed node %s/garbage", svc)
	}
	// The data watch on a malformed node sees it fixed.
	fixed := instance("mixed", "garbage", 7720)
	data, _ := registry.Marshal(fixed)
	if _, err := o.Set(svc+"/garbage", data, -1); err != nil {
		t.Fatal(err)
	}
	n.until(recoveryTimeout, "mixed", good, fixed)
	// A service with nothing but malformed nodes is not found.
	if _, err := o.Create(root+"/junkonly", nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Create(root+"/junkonly/x", []byte("{"), gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetService(ctxT(t, 10*time.Second), "junkonly"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetService(junkonly) = %v, want ErrNotFound", err)
	}
}

// A node left by another session (a previous run of the process) is
// replaced by one of our session.
func TestNodeOfOtherSessionReplaced(t *testing.T) {
	srv := server(t)
	root := uniqueRoot(t)
	in := instance("takeover", "t1", 7800)
	old := srv.Connect(t, 2*time.Second)
	stale := in.Clone()
	stale.Version = "v0-previous-run"
	data, _ := registry.Marshal(stale)
	for _, p := range []string{"/regchain-test", root, root + "/takeover"} {
		if _, err := old.Create(p, nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil && !errors.Is(err, gozk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
	p := nodePath(root, in)
	if _, err := old.Create(p, data, gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, nil, zk.Config{Namespace: root})
	register(t, r, in)
	want, _ := registry.Marshal(in)
	if why := nodeState(old, p, want, func(o int64) bool { return o != old.SessionID() }); why != "" {
		t.Fatalf("after Register over another session's node: %s", why)
	}
}

// Revision is the highest zxid seen and grows with every change.
func TestWatchRevision(t *testing.T) {
	r := newRegistry(t, nil, zk.Config{})
	w, err := r.Watch(ctxT(t, time.Minute), "rev")
	if err != nil {
		t.Fatal(err)
	}
	n := newNexter(t, w)
	var last int64
	for i, in := range []*registry.Instance{instance("rev", "a", 7900), instance("rev", "b", 7910)} {
		register(t, r, in)
		var u *registry.Update
		deadline := time.After(recoveryTimeout)
		for u == nil || len(u.Instances) != i+1 {
			select {
			case res := <-n.ch:
				if res.err == nil {
					u = res.u
				}
			case <-deadline:
				t.Fatalf("no update with %d instances", i+1)
			}
		}
		if u.Revision <= last || u.Source != zk.Source {
			t.Errorf("update %d: Revision %d (previous %d), Source %q; want a growing revision from %q", i, u.Revision, last, u.Source, zk.Source)
		}
		last = u.Revision
	}
}

// Deregister of an instance this Registry did not register deletes its node.
func TestDeregisterUnknownDeletesNode(t *testing.T) {
	root := uniqueRoot(t)
	a := newRegistry(t, nil, zk.Config{Namespace: root})
	b := newRegistry(t, nil, zk.Config{Namespace: root})
	in := instance("foreign", "f1", 8000)
	register(t, a, in)
	if err := b.Deregister(ctxT(t, 10*time.Second), &registry.Instance{Name: in.Name, ID: in.ID}); err != nil {
		t.Fatal(err)
	}
	// a's keeper puts it back: a still wants it.
	testutil.WaitFor(t, recoveryTimeout, "re-created by its owner", func() string {
		got, err := b.GetService(ctxT(t, 5*time.Second), in.Name)
		if err != nil || len(got) != 1 {
			return "not back yet"
		}
		return ""
	})
	if err := a.Deregister(ctxT(t, 10*time.Second), in); err != nil {
		t.Fatal(err)
	}
	// b reads through its watch cache (see GetService): another registry's
	// delete reaches it when b's watch fires, a moment later.
	testutil.WaitFor(t, recoveryTimeout, "gone after the owner's Deregister", func() string {
		if _, err := b.GetService(ctxT(t, 10*time.Second), in.Name); !errors.Is(err, registry.ErrNotFound) {
			return fmt.Sprintf("GetService error %v, want ErrNotFound", err)
		}
		return ""
	})
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []zk.Config{
		{Namespace: "microservices"},
		{Namespace: "/"},
		{Namespace: "/a/"},
		{Namespace: "/a//b"},
		{Namespace: "/a/../b"},
		{Namespace: "/zookeeper"},
		{Namespace: "/zookeeper/x"},
		{Namespace: "/a\x00b"},
		{Password: "no-user"},
		{Username: "a:b", Password: "x"},
		// The deprecated names are checked as the new ones, and may not
		// contradict them.
		{Root: "/"},
		{User: "a:b", Password: "x"},
		{Root: "/a", Namespace: "/b"},
		{User: "a", Username: "b"},
		{RequestTimeout: time.Second, Timeout: 2 * time.Second},
		{MaxRetryDelay: time.Second, MaxBackoff: 2 * time.Second},
	} {
		r, err := zk.New(cfg)
		if !errors.Is(err, registry.ErrInvalid) {
			if r != nil {
				r.Close()
			}
			t.Errorf("New(%+v) = %v, want ErrInvalid", cfg, err)
		}
	}
}

// Stopping watchers (without closing the Registry) ends their goroutines,
// also those of watch-alls and of services whose node does not exist.
func TestWatchStopEndsGoroutines(t *testing.T) {
	r := newRegistry(t, nil, zk.Config{})
	register(t, r, instance("leak", "l1", 8100))
	// Let the Registry's own goroutines start before taking the baseline.
	if _, err := r.GetService(ctxT(t, 10*time.Second), "leak"); err != nil {
		t.Fatal(err)
	}
	baseline := goleak.IgnoreCurrent()
	var ws []registry.Watcher
	for _, name := range []string{"leak", "missing", "", "leak", ""} {
		w, err := r.Watch(ctxT(t, time.Minute), name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Next(); err != nil {
			t.Fatalf("first Next of watcher %q: %v", name, err)
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		w.Stop()
	}
	if err := goleak.Find(baseline); err != nil {
		t.Fatalf("goroutines left after Stop: %v", err)
	}
}
