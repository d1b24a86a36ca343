package embedetcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/regchain/regchain/embedetcd"
	"github.com/regchain/regchain/internal/testsupport/testutil"
)

func TestClusterIsolate(t *testing.T) {
	c, err := embedetcd.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	c.Isolate(leader)
	newLeader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newLeader == leader {
		t.Fatalf("leader %d still leads while isolated", leader)
	}
	// The isolated member refuses linearizable requests: it has no quorum.
	one, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Member(leader).Endpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	short, cancelShort := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, err = one.Put(short, "k", "minority")
	cancelShort()
	if err == nil {
		t.Fatal("a put through the isolated member succeeded")
	}
	c.Heal()
	testutil.WaitFor(t, 30*time.Second, "isolated member rejoins", func() string {
		r, err := one.Get(ctx, "k")
		if err != nil {
			return err.Error()
		}
		if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v1" {
			return fmt.Sprintf("got %v", r.Kvs)
		}
		return ""
	})
}
