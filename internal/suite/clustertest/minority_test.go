package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/regchain/regchain/chain"
)

// TestMinorityPartition: the member a client is attached to is cut off from
// the other two while the client still reaches it. The client knows every
// endpoint. Its registration must stay live through the majority and its
// watcher must move to a member with a leader; measured: the longest time
// the record was absent from the majority, and how long a change made on
// the majority took to reach the watcher.
func TestMinorityPartition(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cutLeader bool
	}{
		{"follower", false},
		{"leader", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t)
			leader := c.Leader()
			minority := (leader + 1) % 3
			if tc.cutLeader {
				minority = leader
			}
			var majority []string
			for i, m := range c.Members() {
				if i != minority {
					majority = append(majority, m.Endpoint())
				}
			}
			// Attach the client to the minority member: while it connects,
			// the others refuse clients; then they are reachable again.
			for i, m := range c.Members() {
				if i != minority {
					m.ClientProxy().Refuse(true)
				}
			}
			reg := newRegistry(t, c.Endpoints(), "/mp")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := reg.Register(ctx, instance("svc", "a")); err != nil {
				t.Fatal(err)
			}
			w, err := reg.Watch(ctx, "svc")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			seen := follow(w)
			waitFor(t, "watcher sees a", func() string { return seen.has("a") })
			// A chain over the same registry, read the way apps read it.
			ch, err := chain.New([]chain.Tier{{Name: "etcd", Registry: reg}}, chain.WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			cw, err := ch.Watch(ctx, "svc")
			if err != nil {
				t.Fatal(err)
			}
			defer cw.Stop()
			viaChain := follow(cw)
			waitFor(t, "chain watcher sees a", func() string { return viaChain.has("a") })
			for i, m := range c.Members() {
				if i != minority {
					m.ClientProxy().Refuse(false)
				}
			}

			obs := rawClient(t, majority)
			other := newRegistry(t, majority, "/mp")
			p := watchPresence(obs, "/mp/svc/a")

			start := time.Now()
			c.Isolate(minority)
			if _, err := c.WaitLeader(ctx); err != nil {
				t.Fatal(err)
			}
			electedIn := time.Since(start)
			// Let more than a TTL pass under the partition so that a
			// keepalive that does not reach the majority shows as an
			// expired lease.
			if err := other.Register(ctx, instance("svc", "b")); err != nil {
				t.Fatal(err)
			}
			moved := waitFor(t, "watcher on the minority client sees b", func() string { return seen.has("a", "b") })
			chainMoved := waitFor(t, "chain watcher sees b", func() string { return viaChain.has("a", "b") })
			waitFor(t, "a TTL and more under partition", func() string {
				if time.Since(start) < ttl+maxBackoff {
					return "partition still young"
				}
				return ""
			})
			absent, present := p.result()
			t.Logf("minority=%s: leader elected in %v; record a absent from the majority at most %v; change reached the watcher in %v, the chain's watcher %v later",
				tc.name, electedIn.Round(time.Millisecond), absent.Round(time.Millisecond), moved.Round(time.Millisecond), chainMoved.Round(time.Millisecond))
			if moved > watchBound {
				t.Errorf("watcher took %v to move, bound %v", moved, watchBound)
			}
			if absent > bound {
				t.Errorf("registration absent from the majority for %v, bound %v", absent, bound)
			}
			if !present {
				waitFor(t, "registration a back on the majority", func() string {
					r, err := obs.Get(ctx, "/mp/svc/a")
					if err != nil || len(r.Kvs) != 1 {
						return "absent"
					}
					return ""
				})
			}
			c.Heal()
			if err := other.Deregister(ctx, instance("svc", "b")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "watcher after heal", func() string { return seen.has("a") })
		})
	}
}
